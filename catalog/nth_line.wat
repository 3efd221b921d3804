;;; name = "nth_line"
;;; description = "Return line n of a text (1 is the first line, -1 the last)"
;;;
;;; [[args]]
;;; name = "text"
;;; type_hint = "string"
;;; description = "the lines, separated by newlines"
;;;
;;; [[args]]
;;; name = "n"
;;; type_hint = "integer"
;;; description = "line number from 1; negative counts from the end"
;;;
;;; [[examples]]
;;; args = ["alpha\nbeta\ngamma\n", "2"]
;;; results = ["beta"]
;;;
;;; [[examples]]
;;; args = ["alpha\nbeta\ngamma\n", "-1"]
;;; results = ["gamma"]
;;;
;;; [[examples]]
;;; args = ["alpha\nbeta", "3"]
;;; status = 5
;;;
;;; [[examples]]
;;; args = ["", "1"]
;;; status = 5
(argv 0 $text)
(argv 1 $n_text)
(local $n i32) (local $lines i32) (local $count i32) (local $last i32) (local $len i32)
(local $line i32) (local $msg i32) (local $err i32)
(call $str.to_i32 (local.get $n_text)) (local.set $err) (local.set $n)
(check $err)
(call $str.split (local.get $text) "\n") (local.set $err) (local.set $lines)
(check $err)
(call $arr.len (local.get $lines)) (local.set $err) (local.set $count)
(check $err)
;; "a\nb\n" splits into ["a", "b", ""]: the empty piece after the last newline is no line.
(call $arr.get (local.get $lines) (i32.sub (local.get $count) (i32.const 1)))
(local.set $err) (local.set $last)
(check $err)
(call $str.len (local.get $last)) (local.set $err) (local.set $len)
(check $err)
(if (i32.eqz (local.get $len))
  (then (local.set $count (i32.sub (local.get $count) (i32.const 1)))))
;; -1 is the last line, -2 the one before it.
(if (i32.lt_s (local.get $n) (i32.const 0))
  (then (local.set $n (i32.add (local.get $count) (i32.add (local.get $n) (i32.const 1))))))
;; No such line: EBOUND (5).
(if (i32.or (i32.lt_s (local.get $n) (i32.const 1)) (i32.gt_s (local.get $n) (local.get $count)))
  (then
    (call $str.from_i32 (local.get $count)) (local.set $err) (local.set $msg)
    (check $err)
    (call $str.concat "no such line; lines in the text: " (local.get $msg))
    (local.set $err) (local.set $msg)
    (check $err)
    (call $debug.log (local.get $msg))
    (return (i32.const 5))))
(call $arr.get (local.get $lines) (i32.sub (local.get $n) (i32.const 1)))
(local.set $err) (local.set $line)
(check $err)
(resv $line)
(i32.const 0)
