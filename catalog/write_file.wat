;;; name = "write_file"
;;; description = "Create or replace a text file in the files directory"
;;;
;;; [[args]]
;;; name = "path"
;;; type_hint = "path"
;;; description = "file path relative to the files directory (parent dirs are made)"
;;;
;;; [[args]]
;;; name = "content"
;;; type_hint = "string"
;;; description = "the new contents of the file"
;;;
;;; [[examples]]
;;; args = ["out/hello.txt", "Hello!\n"]
;;; results = ["ok"]
;;; fs_after = { "out/hello.txt" = "Hello!\n" }
;;;
;;; [[examples]]
;;; args = ["../escape.txt", "x"]
;;; status = 3
(argv 0 $path)
(argv 1 $content)
(local $err i32)
(call $fs.write (local.get $path) (local.get $content)) (local.set $err)
;; A path outside the files directory fails with EACCESS (3).
(check $err)
(resv "ok")
(i32.const 0)
