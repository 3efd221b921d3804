;;; name = "filter_lines"
;;; description = "The lines that contain a substring, one per result"
;;;
;;; [[args]]
;;; name = "text"
;;; type_hint = "string"
;;; description = "the lines, separated by newlines"
;;;
;;; [[args]]
;;; name = "needle"
;;; type_hint = "string"
;;; description = "the substring to look for (case-sensitive)"
;;;
;;; [[examples]]
;;; args = ["ERROR disk full\nINFO started\nERROR no network\n", "ERROR"]
;;; results = ["ERROR disk full", "ERROR no network"]
;;;
;;; [[examples]]
;;; args = ["apple\nbanana", "cherry"]
;;; results = []
;;;
;;; [[examples]]
;;; args = ["", "x"]
;;; results = []
(argv 0 $text)
(argv 1 $needle)
(local $lines i32) (local $n i32) (local $i i32) (local $line i32) (local $last i32)
(local $len i32) (local $nlen i32) (local $rest i32) (local $rest_len i32) (local $err i32)
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
(call $str.len (local.get $needle)) (local.set $err) (local.set $nlen)
(check $err)
(block $done
  (loop $next
    (br_if $done (i32.ge_u (local.get $i) (local.get $n)))
    (call $arr.get (local.get $lines) (local.get $i)) (local.set $err) (local.set $line)
    (check $err)
    ;; Every line contains the empty needle.
    (if (i32.eqz (local.get $nlen))
      (then (resv $line))
      (else
        ;; The line contains the needle if removing every needle makes it shorter.
        (call $str.len (local.get $line)) (local.set $err) (local.set $len)
        (check $err)
        (call $str.replace (local.get $line) (local.get $needle) "") (local.set $err) (local.set $rest)
        (check $err)
        (call $str.len (local.get $rest)) (local.set $err) (local.set $rest_len)
        (check $err)
        (if (i32.lt_u (local.get $rest_len) (local.get $len))
          (then (resv $line)))))
    (local.set $i (i32.add (local.get $i) (i32.const 1)))
    (br $next)))
(i32.const 0)
