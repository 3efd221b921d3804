;;; name = "lower"
;;; description = "Lower-case a text"
;;;
;;; [[args]]
;;; name = "text"
;;; type_hint = "string"
;;; description = "the text to lower-case"
;;;
;;; [[examples]]
;;; args = ["Hello, WÖRLD"]
;;; results = ["hello, wörld"]
(argv 0 $text)
(local $out i32) (local $err i32)
(call $str.lower (local.get $text)) (local.set $err) (local.set $out)
(check $err)
(resv $out)
(i32.const 0)
