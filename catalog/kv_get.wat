;;; name = "kv_get"
;;; description = "Read the value stored under a key (status 4 ENOENT if absent)"
;;;
;;; [[args]]
;;; name = "key"
;;; type_hint = "string"
;;; description = "the key to read"
;;;
;;; [[examples]]
;;; args = ["city"]
;;; kv = { city = "Lisbon" }
;;; results = ["Lisbon"]
;;;
;;; [[examples]]
;;; args = ["nothing_here"]
;;; status = 4
(argv 0 $key)
(local $value i32) (local $err i32)
(call $kv.get (local.get $key)) (local.set $err) (local.set $value)
;; A missing key returns ENOENT (4) as the run's status.
(check $err)
(resv $value)
(i32.const 0)
