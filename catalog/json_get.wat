;;; name = "json_get"
;;; description = "Read one value from a JSON document by path (strings come back raw, others as JSON)"
;;;
;;; [[args]]
;;; name = "json"
;;; type_hint = "string"
;;; description = "the JSON document"
;;;
;;; [[args]]
;;; name = "path"
;;; type_hint = "string"
;;; description = "dotted path with [index] for arrays, e.g. items[0].name"
;;;
;;; [[examples]]
;;; args = ["{\"items\": [{\"name\": \"pen\", \"tags\": [\"a\", \"b\"]}]}", "items[0].name"]
;;; results = ["pen"]
;;;
;;; [[examples]]
;;; args = ["{\"items\": [{\"name\": \"pen\", \"tags\": [\"a\", \"b\"]}]}", "items[0].tags"]
;;; results = ["[\"a\",\"b\"]"]
;;;
;;; [[examples]]
;;; args = ["{\"a\": 1}", "b"]
;;; status = 4
;;;
;;; [[examples]]
;;; args = ["not json", "a"]
;;; status = 7
(argv 0 $doc)
(argv 1 $path)
(local $value i32) (local $err i32)
;; ENOENT (4) if the path is missing, EPARSE (7) for bad JSON or a bad path.
(call $json.get (local.get $doc) (local.get $path)) (local.set $err) (local.set $value)
(check $err)
(resv $value)
(i32.const 0)
