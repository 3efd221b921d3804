;;; name = "unique_lines"
;;; description = "The lines without repeats (first occurrences, in order), one per result"
;;;
;;; [[args]]
;;; name = "text"
;;; type_hint = "string"
;;; description = "the lines, separated by newlines"
;;;
;;; [[examples]]
;;; args = ["apple\nbanana\napple\ncherry\nbanana\n"]
;;; results = ["apple", "banana", "cherry"]
;;;
;;; [[examples]]
;;; args = ["b\n\nb\na\n\nab"]
;;; results = ["b", "", "a", "ab"]
;;;
;;; [[examples]]
;;; args = [""]
;;; results = []
(argv 0 $text)
(local $lines i32) (local $n i32) (local $i i32) (local $line i32) (local $last i32)
(local $len i32) (local $all i32) (local $needle i32) (local $pos i32) (local $first i32)
(local $err i32)
(call $str.split (local.get $text) "\n") (local.set $err) (local.set $lines)
(check $err)
(call $arr.len (local.get $lines)) (local.set $err) (local.set $n)
(check $err)
;; "a\nb\n" splits into ["a", "b", ""]: the empty piece after the last newline is no line.
(call $arr.get (local.get $lines) (i32.sub (local.get $n) (i32.const 1)))
(local.set $err) (local.set $last)
(check $err)
(call $str.len (local.get $last)) (local.set $err) (local.set $len)
(check $err)
(if (i32.eqz (local.get $len))
  (then (local.set $n (i32.sub (local.get $n) (i32.const 1)))))
;; In $all = "\n" + text + "\n", line i starts after the newline at $pos. The first
;; "\n" + line + "\n" in $all marks the first line equal to it: keep line i if that is $pos.
(call $str.concat "\n" (local.get $text)) (local.set $err) (local.set $all)
(check $err)
(call $str.concat (local.get $all) "\n") (local.set $err) (local.set $all)
(check $err)
(block $done
  (loop $next
    (br_if $done (i32.ge_u (local.get $i) (local.get $n)))
    (call $arr.get (local.get $lines) (local.get $i)) (local.set $err) (local.set $line)
    (check $err)
    (call $str.concat "\n" (local.get $line)) (local.set $err) (local.set $needle)
    (check $err)
    (call $str.concat (local.get $needle) "\n") (local.set $err) (local.set $needle)
    (check $err)
    (call $str.find (local.get $all) (local.get $needle)) (local.set $err) (local.set $first)
    (check $err)
    (if (i32.eq (local.get $first) (local.get $pos))
      (then (resv $line)))
    ;; The next line starts after this one and its newline.
    (call $str.len (local.get $line)) (local.set $err) (local.set $len)
    (check $err)
    (local.set $pos (i32.add (local.get $pos) (i32.add (local.get $len) (i32.const 1))))
    (local.set $i (i32.add (local.get $i) (i32.const 1)))
    (br $next)))
(i32.const 0)
