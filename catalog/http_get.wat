;;; name = "http_get"
;;; description = "Fetch a URL with GET and return the body"
;;;
;;; [[args]]
;;; name = "url"
;;; type_hint = "url"
;;; description = "absolute http(s) URL on a granted host"
;;;
;;; [[examples]]
;;; args = ["https://example.com/hello.txt"]
;;; http = { "https://example.com/hello.txt" = "Hello from the web" }
;;; results = ["Hello from the web"]
;;;
;;; [[examples]]
;;; args = ["https://example.com/missing"]
;;; http = { "https://example.com/missing" = { status = 404, body = "not found" } }
;;; status = 6
(argv 0 $url)
(local $body i32) (local $err i32)
;; EACCESS (3) if the host is not granted, EREMOTE (6) for network errors and HTTP status >= 400.
(call $http.get (local.get $url)) (local.set $err) (local.set $body)
(check $err)
(resv $body)
(i32.const 0)
