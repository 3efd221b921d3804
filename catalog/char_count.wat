;;; name = "char_count"
;;; description = "Count the characters (Unicode code points) of a text"
;;;
;;; [[args]]
;;; name = "text"
;;; type_hint = "string"
;;; description = "the text to measure"
;;;
;;; [[examples]]
;;; args = ["héllo"]
;;; results = ["5"]
;;;
;;; [[examples]]
;;; args = [""]
;;; results = ["0"]
(argv 0 $text)
(local $n i32) (local $out i32) (local $err i32)
(call $str.len (local.get $text)) (local.set $err) (local.set $n)
(check $err)
;; Numbers are returned as text.
(call $str.from_i32 (local.get $n)) (local.set $err) (local.set $out)
(check $err)
(resv $out)
(i32.const 0)
