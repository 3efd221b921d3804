;;; name = "list_files"
;;; description = "List a directory of the files directory, one name per result (dirs end with /)"
;;;
;;; [[args]]
;;; name = "dir"
;;; type_hint = "path"
;;; description = "directory relative to the files directory; empty for the top"
;;; default = ""
;;;
;;; [[examples]]
;;; args = []
;;; files = { "b.txt" = "", "a.txt" = "", "docs/readme.md" = "" }
;;; results = ["a.txt", "b.txt", "docs/"]
;;;
;;; [[examples]]
;;; args = ["docs"]
;;; files = { "docs/readme.md" = "hi" }
;;; results = ["readme.md"]
(argv 0 $dir)
(local $names i32) (local $n i32) (local $i i32) (local $name i32) (local $err i32)
(call $fs.list (local.get $dir)) (local.set $err) (local.set $names)
(check $err)
(call $arr.len (local.get $names)) (local.set $err) (local.set $n)
(check $err)
;; Loop i = 0 .. n-1 over the array, returning each name as a result.
(block $done
  (loop $next
    (br_if $done (i32.ge_u (local.get $i) (local.get $n)))
    (call $arr.get (local.get $names) (local.get $i)) (local.set $err) (local.set $name)
    (check $err)
    (resv $name)
    (local.set $i (i32.add (local.get $i) (i32.const 1)))
    (br $next)))
(i32.const 0)
