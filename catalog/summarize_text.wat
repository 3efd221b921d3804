;;; name = "summarize_text"
;;; description = "Summarize a long text: summarize each piece with ai, then combine the summaries"
;;;
;;; [[args]]
;;; name = "text"
;;; type_hint = "string"
;;; description = "the text to summarize (up to about 6 pieces are read)"
;;;
;;; [[args]]
;;; name = "piece_bytes"
;;; type_hint = "integer"
;;; description = "size of each piece in UTF-8 bytes"
;;; default = "8000"
;;;
;;; [[examples]]
;;; args = ["Watt runs small WebAssembly programs in a sandbox."]
;;; ai = { "Summarize this text in 2-3 sentences." = "Watt runs WASM in a sandbox." }
;;; results = ["Watt runs WASM in a sandbox."]
;;;
;;; [[examples]]
;;; args = ["The cat sat on the mat. It was warm.\n\nLater the dog came. It barked loudly.", "40"]
;;; ai = { "Summarize this text in 2-3 sentences." = "A partial summary.", "Combine these partial summaries into one summary of 3-5 sentences." = "A cat rested; a dog barked." }
;;; results = ["A cat rested; a dog barked."]
;;;
;;; [[examples]]
;;; args = ["One. Two. Three. Four. Five. Six. Seven. Eight.", "6"]
;;; ai = { "Summarize this text in 2-3 sentences." = "n", "Combine these partial summaries into one summary of 3-5 sentences." = "Counting to six." }
;;; results = ["Counting to six."]
;;;
;;; [[examples]]
;;; args = ["   "]
;;; results = [""]
(argv 0 $text)
(argv 1 $size_text)
(local $size i32) (local $pieces i32) (local $n i32) (local $i i32) (local $piece i32)
(local $summaries i32) (local $summary i32) (local $all i32) (local $err i32)
(call $str.to_i32 (local.get $size_text)) (local.set $err) (local.set $size)
(check $err)
;; 1. Cut the text into pieces small enough for one ai call each.
(call $str.chunk (local.get $text) (local.get $size)) (local.set $err) (local.set $pieces)
(check $err)
(call $arr.len (local.get $pieces)) (local.set $err) (local.set $n)
(check $err)
(if (i32.eqz (local.get $n))
  (then
    (resv "")
    (return (i32.const 0))))
;; A run may make 8 ai calls: summarize at most 6 pieces, keep one call to combine.
(if (i32.gt_u (local.get $n) (i32.const 6))
  (then
    (call $debug.log "long text: only the first 6 pieces are summarized")
    (local.set $n (i32.const 6))))
;; 2. Summarize each piece into the array $summaries.
(call $arr.new) (local.set $err) (local.set $summaries)
(check $err)
(block $done
  (loop $next
    (br_if $done (i32.ge_u (local.get $i) (local.get $n)))
    (call $arr.get (local.get $pieces) (local.get $i)) (local.set $err) (local.set $piece)
    (check $err)
    (call $ai.assist (local.get $piece) "Summarize this text in 2-3 sentences." (i32.const 0))
    (local.set $err) (local.set $summary)
    (check $err)
    (call $arr.push (local.get $summaries) (local.get $summary)) (local.set $err)
    (check $err)
    (local.set $i (i32.add (local.get $i) (i32.const 1)))
    (br $next)))
;; 3. One piece: its summary is the answer. Several: combine the partial summaries.
(if (i32.gt_u (local.get $n) (i32.const 1))
  (then
    (call $str.join (local.get $summaries) "\n") (local.set $err) (local.set $all)
    (check $err)
    (call $ai.assist (local.get $all) "Combine these partial summaries into one summary of 3-5 sentences." (i32.const 0))
    (local.set $err) (local.set $summary)
    (check $err)))
(resv $summary)
(i32.const 0)
