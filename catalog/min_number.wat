;;; name = "min_number"
;;; description = "The smallest integer in a list separated by commas, spaces or newlines"
;;;
;;; [[args]]
;;; name = "numbers"
;;; type_hint = "string"
;;; description = "the integers, e.g. \"3, 4, -2\""
;;;
;;; [[examples]]
;;; args = ["3, 17, -2\n10"]
;;; results = ["-2"]
;;;
;;; [[examples]]
;;; args = ["-5 -9"]
;;; results = ["-9"]
;;;
;;; [[examples]]
;;; args = [""]
;;; status = 4
;;;
;;; [[examples]]
;;; args = ["4, x"]
;;; status = 7
(argv 0 $text)
(local $spaced i32) (local $items i32) (local $n i32) (local $i i32) (local $item i32)
(local $x i32) (local $best i32) (local $out i32) (local $err i32)
;; Commas become spaces; an empty separator splits on runs of whitespace (no empty items).
(call $str.replace (local.get $text) "," " ") (local.set $err) (local.set $spaced)
(check $err)
(call $str.split (local.get $spaced) "") (local.set $err) (local.set $items)
(check $err)
(call $arr.len (local.get $items)) (local.set $err) (local.set $n)
(check $err)
;; An empty list has no smallest number: ENOENT (4).
(if (i32.eqz (local.get $n))
  (then
    (call $debug.log "the list has no numbers")
    (return (i32.const 4))))
(block $done
  (loop $next
    (br_if $done (i32.ge_u (local.get $i) (local.get $n)))
    (call $arr.get (local.get $items) (local.get $i)) (local.set $err) (local.set $item)
    (check $err)
    ;; EPARSE (7) if an item is not an integer.
    (call $str.to_i32 (local.get $item)) (local.set $err) (local.set $x)
    (check $err)
    ;; The first item starts the search; later ones replace it when smaller.
    (if (i32.or (i32.eqz (local.get $i)) (i32.lt_s (local.get $x) (local.get $best)))
      (then (local.set $best (local.get $x))))
    (local.set $i (i32.add (local.get $i) (i32.const 1)))
    (br $next)))
(call $str.from_i32 (local.get $best)) (local.set $err) (local.set $out)
(check $err)
(resv $out)
(i32.const 0)
