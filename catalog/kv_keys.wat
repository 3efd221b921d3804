;;; name = "kv_keys"
;;; description = "List the stored keys, sorted, one per result"
;;;
;;; [[examples]]
;;; args = []
;;; kv = { city = "Lisbon", age = "7" }
;;; results = ["age", "city"]
;;;
;;; [[examples]]
;;; args = []
;;; results = []
(local $keys i32) (local $n i32) (local $i i32) (local $key i32) (local $err i32)
(call $kv.keys) (local.set $err) (local.set $keys)
(check $err)
(call $arr.len (local.get $keys)) (local.set $err) (local.set $n)
(check $err)
(block $done
  (loop $next
    (br_if $done (i32.ge_u (local.get $i) (local.get $n)))
    (call $arr.get (local.get $keys) (local.get $i)) (local.set $err) (local.set $key)
    (check $err)
    (resv $key)
    (local.set $i (i32.add (local.get $i) (i32.const 1)))
    (br $next)))
(i32.const 0)
