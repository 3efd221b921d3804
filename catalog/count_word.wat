;;; name = "count_word"
;;; description = "Count how often a whole word occurs in a text, ignoring case and punctuation"
;;;
;;; [[args]]
;;; name = "text"
;;; type_hint = "string"
;;; description = "the text to search"
;;;
;;; [[args]]
;;; name = "word"
;;; type_hint = "string"
;;; description = "the single word to count"
;;;
;;; [[examples]]
;;; args = ["The cat saw the dog. Then THE dog (the old one) left; theme over!", "the"]
;;; results = ["4"]
;;;
;;; [[examples]]
;;; args = ["one two three", "four"]
;;; results = ["0"]
;;;
;;; [[examples]]
;;; args = ["", "word"]
;;; results = ["0"]
(argv 0 $text)
(argv 1 $word)
(local $punct i32) (local $plen i32) (local $j i32) (local $c i32)
(local $words i32) (local $n i32) (local $i i32) (local $w i32) (local $same i32)
(local $count i32) (local $out i32) (local $err i32)
;; 1. Compare in lower case.
(call $str.lower (local.get $text)) (local.set $err) (local.set $text)
(check $err)
(call $str.lower (local.get $word)) (local.set $err) (local.set $word)
(check $err)
(call $str.trim (local.get $word)) (local.set $err) (local.set $word)
(check $err)
;; 2. Turn each punctuation mark into a space, so "dog." and "(dog" are the word "dog".
(local.set $punct ".,;:!?\"()[]{}")
(call $str.len (local.get $punct)) (local.set $err) (local.set $plen)
(check $err)
(block $punct_done
  (loop $next_punct
    (br_if $punct_done (i32.ge_u (local.get $j) (local.get $plen)))
    (call $str.slice (local.get $punct) (local.get $j) (i32.add (local.get $j) (i32.const 1)))
    (local.set $err) (local.set $c)
    (check $err)
    (call $str.replace (local.get $text) (local.get $c) " ") (local.set $err) (local.set $text)
    (check $err)
    (local.set $j (i32.add (local.get $j) (i32.const 1)))
    (br $next_punct)))
;; 3. Split on whitespace and count the words equal to $word.
(call $str.split (local.get $text) "") (local.set $err) (local.set $words)
(check $err)
(call $arr.len (local.get $words)) (local.set $err) (local.set $n)
(check $err)
(block $done
  (loop $next
    (br_if $done (i32.ge_u (local.get $i) (local.get $n)))
    (call $arr.get (local.get $words) (local.get $i)) (local.set $err) (local.set $w)
    (check $err)
    (call $str.eq (local.get $w) (local.get $word)) (local.set $err) (local.set $same)
    (check $err)
    (local.set $count (i32.add (local.get $count) (local.get $same)))
    (local.set $i (i32.add (local.get $i) (i32.const 1)))
    (br $next)))
(call $str.from_i32 (local.get $count)) (local.set $err) (local.set $out)
(check $err)
(resv $out)
(i32.const 0)
