package llm

// dropMember returns obj, a JSON object, without its top-level member key
// (matched on the raw, unescaped name), every other byte unchanged; ok is
// false when obj is not an object or has no such member.
func dropMember(obj []byte, key string) (out []byte, ok bool) {
	i := skipSpace(obj, 0)
	if i >= len(obj) || obj[i] != '{' {
		return obj, false
	}
	i++
	prevEnd, first := i, true
	for {
		i = skipSpace(obj, i)
		if i >= len(obj) || obj[i] == '}' {
			return obj, false
		}
		if !first {
			if obj[i] != ',' {
				return obj, false
			}
			i = skipSpace(obj, i+1)
		}
		keyStart := i
		keyEnd, ok := skipString(obj, i)
		if !ok {
			return obj, false
		}
		i = skipSpace(obj, keyEnd)
		if i >= len(obj) || obj[i] != ':' {
			return obj, false
		}
		valueEnd, ok := skipValue(obj, skipSpace(obj, i+1))
		if !ok {
			return obj, false
		}
		if string(obj[keyStart+1:keyEnd-1]) == key {
			out = make([]byte, 0, len(obj))
			if first { // drop the member and the comma after it
				j := skipSpace(obj, valueEnd)
				if j < len(obj) && obj[j] == ',' {
					j = skipSpace(obj, j+1)
				}
				return append(append(out, obj[:keyStart]...), obj[j:]...), true
			}
			return append(append(out, obj[:prevEnd]...), obj[valueEnd:]...), true // drop the comma before it
		}
		prevEnd, first, i = valueEnd, false, valueEnd
	}
}

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// skipString returns the index after the JSON string that starts at b[i].
func skipString(b []byte, i int) (int, bool) {
	if i >= len(b) || b[i] != '"' {
		return i, false
	}
	for i++; i < len(b); i++ {
		switch b[i] {
		case '\\':
			i++
		case '"':
			return i + 1, true
		}
	}
	return i, false
}

// skipValue returns the index after the JSON value that starts at b[i].
func skipValue(b []byte, i int) (int, bool) {
	if i >= len(b) {
		return i, false
	}
	switch b[i] {
	case '"':
		return skipString(b, i)
	case '{', '[':
		depth := 0
		for i < len(b) {
			switch b[i] {
			case '"':
				end, ok := skipString(b, i)
				if !ok {
					return end, false
				}
				i = end
				continue
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return i + 1, true
				}
			}
			i++
		}
		return i, false
	}
	start := i
	for i < len(b) && b[i] != ',' && b[i] != '}' && b[i] != ']' && b[i] != ' ' && b[i] != '\t' && b[i] != '\n' && b[i] != '\r' {
		i++
	}
	return i, i > start
}
