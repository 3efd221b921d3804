;;; name = "http_post_json"
;;; description = "POST a JSON document to a URL and return the response body"
;;;
;;; [[args]]
;;; name = "url"
;;; type_hint = "url"
;;; description = "absolute http(s) URL on a granted host"
;;;
;;; [[args]]
;;; name = "json"
;;; type_hint = "string"
;;; description = "the request body, a JSON document"
;;;
;;; [[examples]]
;;; args = ["https://api.example.com/items", "{\"name\": \"pen\"}"]
;;; http = { "https://api.example.com/items" = "{\"id\": 7, \"name\": \"pen\"}" }
;;; results = ["{\"id\": 7, \"name\": \"pen\"}"]
(argv 0 $url)
(argv 1 $json)
(local $body i32) (local $err i32)
(call $http.post (local.get $url) (local.get $json) "application/json")
(local.set $err) (local.set $body)
(check $err)
(resv $body)
(i32.const 0)
