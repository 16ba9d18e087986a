package keyslot

import "testing"

func TestCRC16AndSlot(t *testing.T) {
	if got := CRC16("123456789"); got != 0x31C3 {
		t.Fatalf("CRC16(123456789) = %#x, want 0x31c3 (CRC16/XMODEM)", got)
	}
	for key, want := range map[string]int{
		"foo": 12182, "bar": 5061, "hello": 866,
		"{user1000}.following": Of("user1000"), "foo{}{bar}": int(CRC16("foo{}{bar}") % Count),
		"foo{{bar}}zap": Of("{bar"), "foo{bar}{zap}": Of("bar"), "{": int(CRC16("{") % Count),
	} {
		if got := Of(key); got != want {
			t.Errorf("Of(%q) = %d, want %d", key, got, want)
		}
	}
}
