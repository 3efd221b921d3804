;;; name = "capitalize_words"
;;; description = "Capitalize the first letter of every word (Title Case); the rest is kept"
;;;
;;; [[args]]
;;; name = "text"
;;; type_hint = "string"
;;; description = "the text to capitalize"
;;;
;;; [[examples]]
;;; args = ["the quick brown fox"]
;;; results = ["The Quick Brown Fox"]
;;;
;;; [[examples]]
;;; args = ["hello  wORLD\nélan vital"]
;;; results = ["Hello  WORLD\nÉlan Vital"]
;;;
;;; [[examples]]
;;; args = [""]
;;; results = [""]
(argv 0 $text)
(local $lines i32) (local $nlines i32) (local $i i32) (local $line i32)
(local $words i32) (local $nwords i32) (local $j i32) (local $word i32) (local $len i32)
(local $head i32) (local $tail i32) (local $out i32) (local $err i32)
;; Split on single newlines, then single spaces, so the spacing of the text is kept.
(call $str.split (local.get $text) "\n") (local.set $err) (local.set $lines)
(check $err)
(call $arr.len (local.get $lines)) (local.set $err) (local.set $nlines)
(check $err)
(block $lines_done
  (loop $next_line
    (br_if $lines_done (i32.ge_u (local.get $i) (local.get $nlines)))
    (call $arr.get (local.get $lines) (local.get $i)) (local.set $err) (local.set $line)
    (check $err)
    (call $str.split (local.get $line) " ") (local.set $err) (local.set $words)
    (check $err)
    (call $arr.len (local.get $words)) (local.set $err) (local.set $nwords)
    (check $err)
    (local.set $j (i32.const 0))
    (block $words_done
      (loop $next_word
        (br_if $words_done (i32.ge_u (local.get $j) (local.get $nwords)))
        (call $arr.get (local.get $words) (local.get $j)) (local.set $err) (local.set $word)
        (check $err)
        (call $str.len (local.get $word)) (local.set $err) (local.set $len)
        (check $err)
        ;; Two spaces in a row leave an empty word: nothing to capitalize.
        (if (local.get $len)
          (then
            (call $str.slice (local.get $word) (i32.const 0) (i32.const 1))
            (local.set $err) (local.set $head)
            (check $err)
            (call $str.upper (local.get $head)) (local.set $err) (local.set $head)
            (check $err)
            (call $str.slice (local.get $word) (i32.const 1) (local.get $len))
            (local.set $err) (local.set $tail)
            (check $err)
            (call $str.concat (local.get $head) (local.get $tail)) (local.set $err) (local.set $word)
            (check $err)
            (call $arr.set (local.get $words) (local.get $j) (local.get $word)) (local.set $err)
            (check $err)))
        (local.set $j (i32.add (local.get $j) (i32.const 1)))
        (br $next_word)))
    (call $str.join (local.get $words) " ") (local.set $err) (local.set $line)
    (check $err)
    (call $arr.set (local.get $lines) (local.get $i) (local.get $line)) (local.set $err)
    (check $err)
    (local.set $i (i32.add (local.get $i) (i32.const 1)))
    (br $next_line)))
(call $str.join (local.get $lines) "\n") (local.set $err) (local.set $out)
(check $err)
(resv $out)
(i32.const 0)
