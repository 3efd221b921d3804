;;; name = "word_count"
;;; description = "Count the words (whitespace-separated) of a text"
;;;
;;; [[args]]
;;; name = "text"
;;; type_hint = "string"
;;; description = "the text to measure"
;;;
;;; [[examples]]
;;; args = ["the quick  brown\nfox "]
;;; results = ["4"]
;;;
;;; [[examples]]
;;; args = ["   "]
;;; results = ["0"]
(argv 0 $text)
(local $words i32) (local $n i32) (local $out i32) (local $err i32)
;; An empty separator splits on runs of whitespace.
(call $str.split (local.get $text) "") (local.set $err) (local.set $words)
(check $err)
(call $arr.len (local.get $words)) (local.set $err) (local.set $n)
(check $err)
(call $str.from_i32 (local.get $n)) (local.set $err) (local.set $out)
(check $err)
(resv $out)
(i32.const 0)
