;;; name = "repeat_text"
;;; description = "Repeat a text n times, with an optional separator between the copies"
;;;
;;; [[args]]
;;; name = "text"
;;; type_hint = "string"
;;; description = "the text to repeat"
;;;
;;; [[args]]
;;; name = "n"
;;; type_hint = "integer"
;;; description = "how many copies (0 or more)"
;;;
;;; [[args]]
;;; name = "sep"
;;; type_hint = "string"
;;; description = "put between copies"
;;; default = ""
;;;
;;; [[examples]]
;;; args = ["ab", "3"]
;;; results = ["ababab"]
;;;
;;; [[examples]]
;;; args = ["hip", "3", ", "]
;;; results = ["hip, hip, hip"]
;;;
;;; [[examples]]
;;; args = ["x", "0"]
;;; results = [""]
;;;
;;; [[examples]]
;;; args = ["x", "-1"]
;;; status = 5
(argv 0 $text)
(argv 1 $n_text)
(argv 2 $sep)
(local $n i32) (local $copies i32) (local $i i32) (local $out i32) (local $err i32)
(call $str.to_i32 (local.get $n_text)) (local.set $err) (local.set $n)
(check $err)
;; A negative count is out of range: EBOUND (5).
(if (i32.lt_s (local.get $n) (i32.const 0))
  (then
    (call $debug.log "n must not be negative")
    (return (i32.const 5))))
;; Push n copies into an array, then join them with the separator.
(call $arr.new) (local.set $err) (local.set $copies)
(check $err)
(block $done
  (loop $next
    (br_if $done (i32.ge_s (local.get $i) (local.get $n)))
    (call $arr.push (local.get $copies) (local.get $text)) (local.set $err)
    (check $err)
    (local.set $i (i32.add (local.get $i) (i32.const 1)))
    (br $next)))
(call $str.join (local.get $copies) (local.get $sep)) (local.set $err) (local.set $out)
(check $err)
(resv $out)
(i32.const 0)
