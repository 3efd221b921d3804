;;; name = "count_chars_in"
;;; description = "Count the vowels (or any set of characters) in a text"
;;;
;;; [[args]]
;;; name = "text"
;;; type_hint = "string"
;;; description = "the text to scan"
;;;
;;; [[args]]
;;; name = "chars"
;;; type_hint = "string"
;;; description = "the characters to count; vowels by default"
;;; default = "aeiouAEIOU"
;;;
;;; [[examples]]
;;; args = ["Hello World"]
;;; results = ["3"]
;;;
;;; [[examples]]
;;; args = ["2024-01-15, 2025-12-31", "0123456789"]
;;; results = ["16"]
;;;
;;; [[examples]]
;;; args = ["banana", "aa"]
;;; results = ["3"]
;;;
;;; [[examples]]
;;; args = [""]
;;; results = ["0"]
(argv 0 $text)
(argv 1 $chars)
(local $len i32) (local $nchars i32) (local $j i32) (local $c i32) (local $first i32)
(local $rest i32) (local $rest_len i32) (local $count i32) (local $out i32) (local $err i32)
(call $str.len (local.get $text)) (local.set $err) (local.set $len)
(check $err)
(call $str.len (local.get $chars)) (local.set $err) (local.set $nchars)
(check $err)
;; For each character c of $chars: the text without c is shorter by its occurrences.
(block $done
  (loop $next
    (br_if $done (i32.ge_u (local.get $j) (local.get $nchars)))
    (call $str.slice (local.get $chars) (local.get $j) (i32.add (local.get $j) (i32.const 1)))
    (local.set $err) (local.set $c)
    (check $err)
    ;; Count a character listed twice in $chars only once: at its first position.
    (call $str.find (local.get $chars) (local.get $c)) (local.set $err) (local.set $first)
    (check $err)
    (if (i32.eq (local.get $first) (local.get $j))
      (then
        (call $str.replace (local.get $text) (local.get $c) "") (local.set $err) (local.set $rest)
        (check $err)
        (call $str.len (local.get $rest)) (local.set $err) (local.set $rest_len)
        (check $err)
        (local.set $count
          (i32.add (local.get $count) (i32.sub (local.get $len) (local.get $rest_len))))))
    (local.set $j (i32.add (local.get $j) (i32.const 1)))
    (br $next)))
(call $str.from_i32 (local.get $count)) (local.set $err) (local.set $out)
(check $err)
(resv $out)
(i32.const 0)
