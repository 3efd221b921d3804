;;; name = "kv_set"
;;; description = "Store a value under a key for the rest of the session"
;;;
;;; [[args]]
;;; name = "key"
;;; type_hint = "string"
;;; description = "the key to write"
;;;
;;; [[args]]
;;; name = "value"
;;; type_hint = "string"
;;; description = "the value to store"
;;;
;;; [[examples]]
;;; args = ["city", "Lisbon"]
;;; results = ["ok"]
;;; kv_after = { city = "Lisbon" }
(argv 0 $key)
(argv 1 $value)
(local $err i32)
(call $kv.set (local.get $key) (local.get $value)) (local.set $err)
(check $err)
(resv "ok")
(i32.const 0)
