;;; name = "chunk_text"
;;; description = "Split a text into pieces of at most max_bytes, cut at paragraph, sentence or word ends"
;;;
;;; [[args]]
;;; name = "text"
;;; type_hint = "string"
;;; description = "the text to split"
;;;
;;; [[args]]
;;; name = "max_bytes"
;;; type_hint = "integer"
;;; description = "largest piece in UTF-8 bytes (at least 4)"
;;; default = "2000"
;;;
;;; [[examples]]
;;; args = ["First paragraph here.\n\nSecond one. It has two sentences.", "30"]
;;; results = ["First paragraph here.", "Second one.", "It has two sentences."]
;;;
;;; [[examples]]
;;; args = ["short text"]
;;; results = ["short text"]
(argv 0 $text)
(argv 1 $max_text)
(local $max i32) (local $pieces i32) (local $n i32) (local $i i32) (local $piece i32) (local $err i32)
(call $str.to_i32 (local.get $max_text)) (local.set $err) (local.set $max)
(check $err)
(call $str.chunk (local.get $text) (local.get $max)) (local.set $err) (local.set $pieces)
(check $err)
(call $arr.len (local.get $pieces)) (local.set $err) (local.set $n)
(check $err)
;; One result per piece.
(block $done
  (loop $next
    (br_if $done (i32.ge_u (local.get $i) (local.get $n)))
    (call $arr.get (local.get $pieces) (local.get $i)) (local.set $err) (local.set $piece)
    (check $err)
    (resv $piece)
    (local.set $i (i32.add (local.get $i) (i32.const 1)))
    (br $next)))
(i32.const 0)
