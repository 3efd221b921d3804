;;; name = "sum_numbers"
;;; description = "Add up a list of integers separated by commas, spaces or newlines"
;;;
;;; [[args]]
;;; name = "numbers"
;;; type_hint = "string"
;;; description = "the integers, e.g. \"3, 4, -2\""
;;;
;;; [[examples]]
;;; args = ["3, 4, -2\n10"]
;;; results = ["15"]
;;;
;;; [[examples]]
;;; args = [""]
;;; results = ["0"]
;;;
;;; [[examples]]
;;; args = ["1, two, 3"]
;;; status = 7
;;;
;;; [[examples]]
;;; args = ["2147483647, 1"]
;;; status = 5
(argv 0 $text)
(local $spaced i32) (local $items i32) (local $n i32) (local $i i32) (local $item i32)
(local $x i32) (local $sum i64) (local $out i32) (local $err i32)
;; Commas become spaces; an empty separator splits on runs of whitespace (no empty items).
(call $str.replace (local.get $text) "," " ") (local.set $err) (local.set $spaced)
(check $err)
(call $str.split (local.get $spaced) "") (local.set $err) (local.set $items)
(check $err)
(call $arr.len (local.get $items)) (local.set $err) (local.set $n)
(check $err)
(block $done
  (loop $next
    (br_if $done (i32.ge_u (local.get $i) (local.get $n)))
    (call $arr.get (local.get $items) (local.get $i)) (local.set $err) (local.set $item)
    (check $err)
    ;; EPARSE (7) if an item is not an integer.
    (call $str.to_i32 (local.get $item)) (local.set $err) (local.set $x)
    (check $err)
    ;; Add in 64 bits; EBOUND (5) if the sum leaves the i32 range.
    (local.set $sum (i64.add (local.get $sum) (i64.extend_i32_s (local.get $x))))
    (if (i32.or (i64.gt_s (local.get $sum) (i64.const 2147483647))
                (i64.lt_s (local.get $sum) (i64.const -2147483648)))
      (then
        (call $debug.log "the sum does not fit in an i32")
        (return (i32.const 5))))
    (local.set $i (i32.add (local.get $i) (i32.const 1)))
    (br $next)))
(call $str.from_i32 (i32.wrap_i64 (local.get $sum))) (local.set $err) (local.set $out)
(check $err)
(resv $out)
(i32.const 0)
