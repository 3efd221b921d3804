;;; name = "read_file"
;;; description = "Read a text file from the files directory"
;;;
;;; [[args]]
;;; name = "path"
;;; type_hint = "path"
;;; description = "file path relative to the files directory"
;;;
;;; [[examples]]
;;; args = ["notes/todo.txt"]
;;; files = { "notes/todo.txt" = "buy milk\ncall Bob\n" }
;;; results = ["buy milk\ncall Bob\n"]
;;;
;;; [[examples]]
;;; args = ["missing.txt"]
;;; status = 4
(argv 0 $path)
(local $text i32) (local $err i32)
(call $fs.read (local.get $path)) (local.set $err) (local.set $text)
(check $err)
(resv $text)
(i32.const 0)
