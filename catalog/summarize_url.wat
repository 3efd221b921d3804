;;; name = "summarize_url"
;;; description = "Fetch a page with GET and summarize it with ai (piece by piece, then combined)"
;;;
;;; [[args]]
;;; name = "url"
;;; type_hint = "url"
;;; description = "absolute http(s) URL on a granted host"
;;;
;;; [[args]]
;;; name = "piece_bytes"
;;; type_hint = "integer"
;;; description = "size of each piece in UTF-8 bytes"
;;; default = "8000"
;;;
;;; [[examples]]
;;; args = ["https://example.com/news"]
;;; http = { "https://example.com/news" = "<html><body><p>Rain is expected all week.</p></body></html>" }
;;; ai = { "Summarize this web page in 2-3 sentences; ignore markup and navigation." = "Rain all week." }
;;; results = ["Rain all week."]
;;;
;;; [[examples]]
;;; args = ["https://example.com/long", "30"]
;;; http = { "https://example.com/long" = "First part of the page.\n\nSecond part of the page." }
;;; ai = { "Summarize this web page in 2-3 sentences; ignore markup and navigation." = "Part.", "Combine these partial summaries into one summary of 3-5 sentences." = "A page in two parts." }
;;; results = ["A page in two parts."]
;;;
;;; [[examples]]
;;; args = ["https://example.com/gone"]
;;; http = { "https://example.com/gone" = { status = 410, body = "gone" } }
;;; status = 6
(argv 0 $url)
(argv 1 $size_text)
(local $size i32) (local $page i32) (local $pieces i32) (local $n i32) (local $i i32) (local $piece i32)
(local $summaries i32) (local $summary i32) (local $all i32) (local $err i32)
(call $str.to_i32 (local.get $size_text)) (local.set $err) (local.set $size)
(check $err)
;; 1. Fetch the page.
(call $http.get (local.get $url)) (local.set $err) (local.set $page)
(check $err)
;; 2. Cut it into pieces small enough for one ai call each.
(call $str.chunk (local.get $page) (local.get $size)) (local.set $err) (local.set $pieces)
(check $err)
(call $arr.len (local.get $pieces)) (local.set $err) (local.set $n)
(check $err)
(if (i32.eqz (local.get $n))
  (then
    (resv "(the page is empty)")
    (return (i32.const 0))))
;; A run may make 8 ai calls: summarize at most 6 pieces, keep one call to combine.
(if (i32.gt_u (local.get $n) (i32.const 6))
  (then
    (call $debug.log "long page: only the first 6 pieces are summarized")
    (local.set $n (i32.const 6))))
;; 3. Summarize each piece.
(call $arr.new) (local.set $err) (local.set $summaries)
(check $err)
(block $done
  (loop $next
    (br_if $done (i32.ge_u (local.get $i) (local.get $n)))
    (call $arr.get (local.get $pieces) (local.get $i)) (local.set $err) (local.set $piece)
    (check $err)
    (call $ai.assist (local.get $piece)
      "Summarize this web page in 2-3 sentences; ignore markup and navigation." (i32.const 0))
    (local.set $err) (local.set $summary)
    (check $err)
    (call $arr.push (local.get $summaries) (local.get $summary)) (local.set $err)
    (check $err)
    (local.set $i (i32.add (local.get $i) (i32.const 1)))
    (br $next)))
;; 4. Several pieces: combine the partial summaries into one.
(if (i32.gt_u (local.get $n) (i32.const 1))
  (then
    (call $str.join (local.get $summaries) "\n") (local.set $err) (local.set $all)
    (check $err)
    (call $ai.assist (local.get $all) "Combine these partial summaries into one summary of 3-5 sentences." (i32.const 0))
    (local.set $err) (local.set $summary)
    (check $err)))
(resv $summary)
(i32.const 0)
