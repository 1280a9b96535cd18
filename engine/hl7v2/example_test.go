package hl7v2_test

import (
	"fmt"
	"strings"
	"time"

	"github.com/osprey-health/osprey/engine/hl7v2"
)

func Example() {
	raw := "MSH|^~\\&|RIS|RAD|OSPREY|HOSP|20260301120000||ORM^O01^ORM_O01|ORM42|P|2.5.1||||||UNICODE UTF-8\r" +
		"PID|1||4711^^^MRN~999-99-9999^^^SSN||Müller^Zoë||19720304|F\r" +
		"OBR|1|PLC1||CTHEAD^CT Head without contrast^L|||||||||Headache \\T\\ dizziness\r"

	m, err := hl7v2.Parse([]byte(raw))
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(m.Type(), m.Event(), m.ControlID())
	fmt.Println(m.Get("PID-5.1"), m.Get("PID-5.2"))
	fmt.Println(m.Get("PID-3[2].1"))
	fmt.Println(m.Get("OBR-13")) // unescaped: \T\ is "&"

	// Set escapes delimiters, so the "^" stays data and cannot shift the components.
	if err := m.Set("OBR-13", "Headache ^ nausea"); err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(m.Raw("OBR-13"))

	ack := hl7v2.NewAck(m, hl7v2.ApplicationAccept, hl7v2.AckOptions{
		ControlID: "ACK1",
		Now:       time.Date(2026, 3, 1, 12, 0, 1, 0, time.UTC),
	})
	fmt.Println(strings.ReplaceAll(string(ack.Encode()), "\r", "\n"))
	// Output:
	// ORM O01 ORM42
	// Müller Zoë
	// 999-99-9999
	// Headache & dizziness
	// Headache \S\ nausea
	// MSH|^~\&|OSPREY|HOSP|RIS|RAD|20260301120001+0000||ACK^O01^ACK|ACK1|P|2.5.1||||||UNICODE UTF-8
	// MSA|AA|ORM42
}

func ExampleSplit() {
	file := "BHS|^~\\&|LAB\r" +
		"MSH|^~\\&|LAB||||||ORU^R01|M1|P|2.5\rPID|1||111\r" +
		"MSH|^~\\&|LAB||||||ORU^R01|M2|P|2.5\rPID|1||222\r" +
		"BTS|2\r"
	msgs, err := hl7v2.Split([]byte(file))
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, b := range msgs {
		m, _ := hl7v2.Parse(b)
		fmt.Println(m.ControlID(), m.Get("PID-3"))
	}
	// Output:
	// M1 111
	// M2 222
}

func ExampleParseStrict() {
	_, err := hl7v2.ParseStrict([]byte("MSH|^~\\&|||||||ADT^A01|1|P|2.5\rPID|1||x\\Fy\r"))
	fmt.Println(err)
	// Output:
	// hl7v2: segment 2 (PID) field 3 at byte 39: unterminated escape sequence
}

func ExampleReadAck() {
	m, _ := hl7v2.Parse([]byte("MSH|^~\\&|A|B|C|D|20260301||ACK^A01^ACK|X1|P|2.5\rMSA|AE|M7\rERR||PID^1^3|101^Required field missing^HL70357|E||||MRN missing\r"))
	a, err := hl7v2.ReadAck(m)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(a.Code, a.ControlID, a.Errors[0].Code, a.Errors[0].Location, a.Errors[0].Text)
	// Output:
	// AE M7 101 PID-3 MRN missing
}
