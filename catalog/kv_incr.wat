;;; name = "kv_incr"
;;; description = "Add to the integer stored under a key (missing counts as 0); returns the new value"
;;;
;;; [[args]]
;;; name = "key"
;;; type_hint = "string"
;;; description = "the counter's key"
;;;
;;; [[args]]
;;; name = "by"
;;; type_hint = "integer"
;;; description = "how much to add (may be negative)"
;;; default = "1"
;;;
;;; [[examples]]
;;; args = ["visits"]
;;; kv = { visits = "41" }
;;; results = ["42"]
;;; kv_after = { visits = "42" }
;;;
;;; [[examples]]
;;; args = ["new_counter", "-3"]
;;; results = ["-3"]
;;; kv_after = { new_counter = "-3" }
;;;
;;; [[examples]]
;;; args = ["name"]
;;; kv = { name = "Ada" }
;;; status = 7
(argv 0 $key)
(argv 1 $by_text)
(local $by i32) (local $old i32) (local $n i32) (local $out i32) (local $err i32)
(call $str.to_i32 (local.get $by_text)) (local.set $err) (local.set $by)
(check $err)
(call $kv.get (local.get $key)) (local.set $err) (local.set $old)
;; ENOENT (4): the key is new, so start from "0".
(if (i32.eq (local.get $err) (i32.const 4))
  (then
    (local.set $old "0")
    (local.set $err (i32.const 0))))
(check $err)
;; A value that is not a number fails with EPARSE (7).
(call $str.to_i32 (local.get $old)) (local.set $err) (local.set $n)
(check $err)
(call $str.from_i32 (i32.add (local.get $n) (local.get $by))) (local.set $err) (local.set $out)
(check $err)
(call $kv.set (local.get $key) (local.get $out)) (local.set $err)
(check $err)
(resv $out)
(i32.const 0)
