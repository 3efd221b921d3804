;;; name = "replace"
;;; description = "Replace every occurrence of a substring"
;;;
;;; [[args]]
;;; name = "text"
;;; type_hint = "string"
;;; description = "the text to edit"
;;;
;;; [[args]]
;;; name = "old"
;;; type_hint = "string"
;;; description = "the substring to find (not empty)"
;;;
;;; [[args]]
;;; name = "new"
;;; type_hint = "string"
;;; description = "what to put in its place"
;;; default = ""
;;;
;;; [[examples]]
;;; args = ["one fish two fish", "fish", "cat"]
;;; results = ["one cat two cat"]
;;;
;;; [[examples]]
;;; args = ["a-b-c", "-"]
;;; results = ["abc"]
(argv 0 $text)
(argv 1 $old)
(argv 2 $new)
(local $out i32) (local $err i32)
(call $str.replace (local.get $text) (local.get $old) (local.get $new))
(local.set $err) (local.set $out)
(check $err)
(resv $out)
(i32.const 0)
