;;; name = "contains"
;;; description = "Say whether a text contains a substring: true or false"
;;;
;;; [[args]]
;;; name = "text"
;;; type_hint = "string"
;;; description = "the text to search"
;;;
;;; [[args]]
;;; name = "needle"
;;; type_hint = "string"
;;; description = "the substring to look for"
;;;
;;; [[examples]]
;;; args = ["the quick brown fox", "brown"]
;;; results = ["true"]
;;;
;;; [[examples]]
;;; args = ["the quick brown fox", "cat"]
;;; results = ["false"]
(argv 0 $text)
(argv 1 $needle)
(local $idx i32) (local $err i32)
(call $str.find (local.get $text) (local.get $needle)) (local.set $err) (local.set $idx)
;; ENOENT (4) is an answer here, not a failure.
(if (i32.eq (local.get $err) (i32.const 4))
  (then
    (resv "false")
    (return (i32.const 0))))
(check $err)
(resv "true")
(i32.const 0)
