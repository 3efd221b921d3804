;;; name = "reverse"
;;; description = "Reverse a text character by character"
;;;
;;; [[args]]
;;; name = "text"
;;; type_hint = "string"
;;; description = "the text to reverse"
;;;
;;; [[examples]]
;;; args = ["stressed"]
;;; results = ["desserts"]
;;;
;;; [[examples]]
;;; args = ["añb"]
;;; results = ["bña"]
(argv 0 $text)
(local $out i32) (local $err i32)
(call $str.reverse (local.get $text)) (local.set $err) (local.set $out)
(check $err)
(resv $out)
(i32.const 0)
