;;; name = "fetch_json_field"
;;; description = "GET a JSON URL and return one field of it by path"
;;;
;;; [[args]]
;;; name = "url"
;;; type_hint = "url"
;;; description = "absolute http(s) URL that returns JSON, on a granted host"
;;;
;;; [[args]]
;;; name = "path"
;;; type_hint = "string"
;;; description = "dotted path with [index] for arrays, e.g. current.temp or items[0].id"
;;;
;;; [[examples]]
;;; args = ["https://api.example.com/weather?city=Oslo", "current.temp_c"]
;;; http = { "https://api.example.com/weather?city=Oslo" = "{\"current\": {\"temp_c\": -3.5, \"sky\": \"snow\"}}" }
;;; results = ["-3.5"]
;;;
;;; [[examples]]
;;; args = ["https://api.example.com/weather?city=Oslo", "current.wind"]
;;; http = { "https://api.example.com/weather?city=Oslo" = "{\"current\": {\"temp_c\": -3.5}}" }
;;; status = 4
(argv 0 $url)
(argv 1 $path)
(local $doc i32) (local $value i32) (local $err i32)
;; 1. Fetch the document.
(call $http.get (local.get $url)) (local.set $err) (local.set $doc)
(check $err)
;; 2. Pick the field: ENOENT (4) if missing, EPARSE (7) if the body is not JSON.
(call $json.get (local.get $doc) (local.get $path)) (local.set $err) (local.set $value)
(check $err)
(resv $value)
(i32.const 0)
