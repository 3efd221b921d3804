;;; name = "append_line"
;;; description = "Append one line (a newline is added) to a text file, creating it if missing"
;;;
;;; [[args]]
;;; name = "path"
;;; type_hint = "path"
;;; description = "file path relative to the files directory"
;;;
;;; [[args]]
;;; name = "line"
;;; type_hint = "string"
;;; description = "the text of the line, without a newline"
;;;
;;; [[examples]]
;;; args = ["log.txt", "third"]
;;; files = { "log.txt" = "first\nsecond\n" }
;;; results = ["ok"]
;;; fs_after = { "log.txt" = "first\nsecond\nthird\n" }
;;;
;;; [[examples]]
;;; args = ["new.txt", "only line"]
;;; fs_after = { "new.txt" = "only line\n" }
(argv 0 $path)
(argv 1 $line)
(local $data i32) (local $err i32)
(call $str.concat (local.get $line) "\n") (local.set $err) (local.set $data)
(check $err)
(call $fs.append (local.get $path) (local.get $data)) (local.set $err)
(check $err)
(resv "ok")
(i32.const 0)
