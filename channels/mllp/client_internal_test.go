package mllp

import (
	"errors"
	"testing"
)

func TestControlID(t *testing.T) {
	tests := []struct {
		name, msg, want string
		wantErr         bool
	}{
		{"plain", "MSH|^~\\&|A|B|C|D|20260101||ORM^O01|CTRL1|P|2.5\rPID|1", "CTRL1", false},
		{"last field", "MSH|^~\\&|A|B|C|D|20260101||ORM^O01|CTRL2", "CTRL2", false},
		{"LF terminator", "MSH|^~\\&|A|B|C|D|20260101||ORM^O01|CTRL3|P\nPID|1", "CTRL3", false},
		{"other field separator", "MSH#^~\\&#A#B#C#D#20260101##ORM^O01#CTRL4#P", "CTRL4", false},
		{"escaped separator", "MSH|^~\\&|A|B|C|D|20260101||ORM^O01|ID\\F\\X|P|2.5\r", "ID|X", false},
		{"empty", "MSH|^~\\&|A|B|C|D|20260101||ORM^O01||P|2.5\r", "", true},
		{"too few fields", "MSH|^~\\&|A|B|C\r", "", true},
		{"no MSH", "PID|1||123\r", "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := controlID([]byte(tt.msg))
			if (err != nil) != tt.wantErr || got != tt.want {
				t.Fatalf("controlID = %q, %v; want %q (error %v)", got, err, tt.want, tt.wantErr)
			}
			if err != nil && !errors.Is(err, ErrInvalidMessage) {
				t.Errorf("error %v does not wrap ErrInvalidMessage", err)
			}
		})
	}
}
