;;; name = "upper"
;;; description = "Upper-case a text"
;;;
;;; [[args]]
;;; name = "text"
;;; type_hint = "string"
;;; description = "the text to upper-case"
;;;
;;; [[examples]]
;;; args = ["Hello, wörld"]
;;; results = ["HELLO, WÖRLD"]
;; A (ptr err) result is consumed err first, then the pointer.
(argv 0 $text)
(local $out i32) (local $err i32)
(call $str.upper (local.get $text)) (local.set $err) (local.set $out)
(check $err)
(resv $out)
(i32.const 0)
