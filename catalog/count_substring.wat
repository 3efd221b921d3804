;;; name = "count_substring"
;;; description = "Count the non-overlapping occurrences of a substring in a text"
;;;
;;; [[args]]
;;; name = "text"
;;; type_hint = "string"
;;; description = "the text to search"
;;;
;;; [[args]]
;;; name = "needle"
;;; type_hint = "string"
;;; description = "the substring to count (not empty)"
;;;
;;; [[examples]]
;;; args = ["one fish two fish red fish", "fish"]
;;; results = ["3"]
;;;
;;; [[examples]]
;;; args = ["aaaa", "aa"]
;;; results = ["2"]
;;;
;;; [[examples]]
;;; args = ["", "x"]
;;; results = ["0"]
;;;
;;; [[examples]]
;;; args = ["abc", ""]
;;; status = 5
(argv 0 $text)
(argv 1 $needle)
(local $len i32) (local $pieces i32) (local $n i32) (local $out i32) (local $err i32)
(call $str.len (local.get $needle)) (local.set $err) (local.set $len)
(check $err)
;; An empty needle would match everywhere: EBOUND (5).
(if (i32.eqz (local.get $len))
  (then
    (call $debug.log "the needle is empty")
    (return (i32.const 5))))
;; k occurrences cut the text into k + 1 pieces (scanning left to right, no overlaps).
(call $str.split (local.get $text) (local.get $needle)) (local.set $err) (local.set $pieces)
(check $err)
(call $arr.len (local.get $pieces)) (local.set $err) (local.set $n)
(check $err)
(call $str.from_i32 (i32.sub (local.get $n) (i32.const 1))) (local.set $err) (local.set $out)
(check $err)
(resv $out)
(i32.const 0)
