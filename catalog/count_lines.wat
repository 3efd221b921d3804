;;; name = "count_lines"
;;; description = "Count the lines of a text file in the files directory"
;;;
;;; [[args]]
;;; name = "path"
;;; type_hint = "path"
;;; description = "file path relative to the files directory"
;;;
;;; [[examples]]
;;; args = ["data.csv"]
;;; files = { "data.csv" = "id,name\n1,Ada\n2,Bob\n" }
;;; results = ["3"]
;;;
;;; [[examples]]
;;; args = ["no_final_newline.txt"]
;;; files = { "no_final_newline.txt" = "one\ntwo" }
;;; results = ["2"]
;;;
;;; [[examples]]
;;; args = ["empty.txt"]
;;; files = { "empty.txt" = "" }
;;; results = ["0"]
(argv 0 $path)
(local $text i32) (local $lines i32) (local $n i32) (local $last i32) (local $len i32) (local $out i32) (local $err i32)
(call $fs.read (local.get $path)) (local.set $err) (local.set $text)
(check $err)
(call $str.split (local.get $text) "\n") (local.set $err) (local.set $lines)
(check $err)
(call $arr.len (local.get $lines)) (local.set $err) (local.set $n)
(check $err)
;; "a\nb\n" splits into ["a", "b", ""]: do not count the empty piece after the last newline.
(call $arr.get (local.get $lines) (i32.sub (local.get $n) (i32.const 1)))
(local.set $err) (local.set $last)
(check $err)
(call $str.len (local.get $last)) (local.set $err) (local.set $len)
(check $err)
(if (i32.eqz (local.get $len))
  (then (local.set $n (i32.sub (local.get $n) (i32.const 1)))))
(call $str.from_i32 (local.get $n)) (local.set $err) (local.set $out)
(check $err)
(resv $out)
(i32.const 0)
