;;; name = "reverse_words"
;;; description = "Reverse the order of the words of a text (joined by single spaces)"
;;;
;;; [[args]]
;;; name = "text"
;;; type_hint = "string"
;;; description = "the text whose words to reverse"
;;;
;;; [[examples]]
;;; args = ["the quick  brown\nfox"]
;;; results = ["fox brown quick the"]
;;;
;;; [[examples]]
;;; args = ["hello"]
;;; results = ["hello"]
;;;
;;; [[examples]]
;;; args = ["   "]
;;; results = [""]
(argv 0 $text)
(local $words i32) (local $reversed i32) (local $i i32) (local $word i32) (local $out i32)
(local $err i32)
;; An empty separator splits on runs of whitespace.
(call $str.split (local.get $text) "") (local.set $err) (local.set $words)
(check $err)
(call $arr.len (local.get $words)) (local.set $err) (local.set $i)
(check $err)
(call $arr.new) (local.set $err) (local.set $reversed)
(check $err)
;; Walk i from the last word down to the first, pushing each onto $reversed.
(block $done
  (loop $next
    (br_if $done (i32.eqz (local.get $i)))
    (local.set $i (i32.sub (local.get $i) (i32.const 1)))
    (call $arr.get (local.get $words) (local.get $i)) (local.set $err) (local.set $word)
    (check $err)
    (call $arr.push (local.get $reversed) (local.get $word)) (local.set $err)
    (check $err)
    (br $next)))
(call $str.join (local.get $reversed) " ") (local.set $err) (local.set $out)
(check $err)
(resv $out)
(i32.const 0)
