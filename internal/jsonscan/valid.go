package jsonscan

// maxDepth is encoding/json's limit on nesting.
const maxDepth = 10000

// Valid reports, in one pass, whether b is exactly one JSON value (with
// whitespace around it, as json.Valid allows), and whether it holds
// whitespace outside its strings (which json.Compact would remove). Like
// json.Valid it does not check that strings are UTF-8.
func Valid(b []byte) (ok, spaced bool) {
	v := validator{b: b}
	i := v.value(v.space(0), 0)
	if i < 0 {
		return false, false
	}
	return v.space(i) == len(b), v.spaced
}

type validator struct {
	b      []byte
	spaced bool
}

func (v *validator) space(i int) int {
	j := Space(v.b, i)
	if j != i {
		v.spaced = true
	}
	return j
}

// value returns the index after the value at i, or -1.
func (v *validator) value(i, depth int) int {
	b := v.b
	if i >= len(b) || depth > maxDepth {
		return -1
	}
	switch c := b[i]; {
	case c == '"':
		return v.str(i)
	case c == '{' || c == '[':
		closer := byte(']')
		if c == '{' {
			closer = '}'
		}
		i = v.space(i + 1)
		if i < len(b) && b[i] == closer {
			return i + 1
		}
		for {
			if closer == '}' { // an object's member starts with its key
				if i >= len(b) || b[i] != '"' {
					return -1
				}
				if i = v.str(i); i < 0 {
					return -1
				}
				if i = v.space(i); i >= len(b) || b[i] != ':' {
					return -1
				}
				i = v.space(i + 1)
			}
			if i = v.value(i, depth+1); i < 0 {
				return -1
			}
			if i = v.space(i); i >= len(b) {
				return -1
			}
			if b[i] == closer {
				return i + 1
			}
			if b[i] != ',' {
				return -1
			}
			i = v.space(i + 1)
		}
	case c == 't':
		return literal(b, i, "true")
	case c == 'f':
		return literal(b, i, "false")
	case c == 'n':
		return literal(b, i, "null")
	case c == '-' || c >= '0' && c <= '9':
		return number(b, i)
	}
	return -1
}

// str returns the index after the string at i, or -1.
func (v *validator) str(i int) int {
	b := v.b
	for j := i + 1; j < len(b); j++ {
		switch c := b[j]; {
		case c == '"':
			return j + 1
		case c < 0x20:
			return -1
		case c == '\\':
			j++
			if j >= len(b) {
				return -1
			}
			switch b[j] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
			case 'u':
				if j+4 >= len(b) {
					return -1
				}
				for _, h := range b[j+1 : j+5] {
					if !(h >= '0' && h <= '9' || h >= 'a' && h <= 'f' || h >= 'A' && h <= 'F') {
						return -1
					}
				}
				j += 4
			default:
				return -1
			}
		}
	}
	return -1
}

func literal(b []byte, i int, word string) int {
	if len(b)-i < len(word) || string(b[i:i+len(word)]) != word {
		return -1
	}
	return i + len(word)
}

// number returns the index after the number at i, or -1.
func number(b []byte, i int) int {
	if b[i] == '-' {
		i++
	}
	digits := func() int {
		j := i
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
		}
		return i - j
	}
	if i < len(b) && b[i] == '0' {
		i++
	} else if digits() == 0 {
		return -1
	}
	if i < len(b) && b[i] == '.' {
		i++
		if digits() == 0 {
			return -1
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		if digits() == 0 {
			return -1
		}
	}
	return i
}

// Number says whether b is exactly one JSON number.
func Number(b []byte) bool { return len(b) > 0 && number(b, 0) == len(b) }
