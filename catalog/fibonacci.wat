;;; name = "fibonacci"
;;; description = "The n-th Fibonacci number, F(0)=0, F(1)=1, for n from 0 to 46"
;;;
;;; [[args]]
;;; name = "n"
;;; type_hint = "integer"
;;; description = "which number, 0 to 46"
;;;
;;; [[examples]]
;;; args = ["10"]
;;; results = ["55"]
;;;
;;; [[examples]]
;;; args = ["0"]
;;; results = ["0"]
;;;
;;; [[examples]]
;;; args = ["46"]
;;; results = ["1836311903"]
;;;
;;; [[examples]]
;;; args = ["47"]
;;; status = 5
(argv 0 $n_text)
(local $n i32) (local $a i32) (local $b i32) (local $next i32) (local $i i32)
(local $out i32) (local $err i32)
(call $str.to_i32 (local.get $n_text)) (local.set $err) (local.set $n)
(check $err)
;; F(47) does not fit in an i32: outside 0..46 is EBOUND (5).
(if (i32.or (i32.lt_s (local.get $n) (i32.const 0)) (i32.gt_s (local.get $n) (i32.const 46)))
  (then
    (call $debug.log "n must be from 0 to 46")
    (return (i32.const 5))))
;; Keep a = F(i), b = F(i+1); step i up to n.
(local.set $a (i32.const 0))
(local.set $b (i32.const 1))
(block $done
  (loop $step
    (br_if $done (i32.ge_s (local.get $i) (local.get $n)))
    (local.set $next (i32.add (local.get $a) (local.get $b)))
    (local.set $a (local.get $b))
    (local.set $b (local.get $next))
    (local.set $i (i32.add (local.get $i) (i32.const 1)))
    (br $step)))
(call $str.from_i32 (local.get $a)) (local.set $err) (local.set $out)
(check $err)
(resv $out)
(i32.const 0)
