package sqlite_test

import (
	"context"
	"fmt"
	"time"

	"github.com/osprey-health/osprey/engine/store"
	"github.com/osprey-health/osprey/engine/store/sqlite"
)

func Example() {
	ctx := context.Background()
	s, err := sqlite.Open(ctx, sqlite.Memory, sqlite.Options{}) // a file path in production
	if err != nil {
		panic(err)
	}
	defer s.Close()

	at := time.Date(2026, 3, 14, 9, 26, 53, 0, time.UTC)
	err = s.PutMessages(ctx, []store.Message{{
		ID: "01J0ABC", Channel: "ris-in", ContentType: "application/hl7-v2", ReceivedAt: at,
		Raw:       []byte("MSH|^~\\&|RIS|HOSP|||20260314092653||ADT^A01|MSG0001|P|2.5.1\rPID|1||123456||MÜLLER^HANS\r"),
		ControlID: "MSG0001", MessageType: "ADT^A01", PatientID: "123456",
	}})
	if err != nil {
		panic(err)
	}
	page, err := s.Search(ctx, store.Query{MessageType: "ADT", Text: "müller"})
	if err != nil {
		panic(err)
	}
	for _, m := range page.Messages {
		fmt.Println(m.ID, m.ControlID, m.Status, m.ReceivedAt.Format(time.RFC3339))
	}
	// Output: 01J0ABC MSG0001 received 2026-03-14T09:26:53Z
}
