package orders_test

import (
	"fmt"

	"github.com/osprey-health/osprey/engine/hl7v2"
	"github.com/osprey-health/osprey/engine/orders"
)

func ExampleFromHL7() {
	m, err := hl7v2.Parse([]byte("MSH|^~\\&|RIS|HOSP|OSPREY|RAD|20261201101500||OMI^O23^OMI_O23|M1|P|2.5.1\r" +
		"PID|1||MRN1^^^HOSP^MR||DOE^JANE||19700515|F\r" +
		"PV1|1|E|EDX^1^1^HOSP\r" +
		"ORC|NW|PL1|FL1||SC\r" +
		"TQ1|1||||||||S^Stat^HL70485\r" +
		"OBR|1|PL1|FL1|CTHEAD^CT HEAD WO CONTRAST\r" +
		"IPC|ACC123^RIS|RP1|1.2.3.4|SPS1|CT\r"))
	if err != nil {
		panic(err)
	}
	o, ok := orders.FromHL7(m)
	fmt.Println(ok, o.Accession, o.Priority, o.Location, o.ProcedureCode, o.Status)
	// Output: true ACC123 S EDX CTHEAD SC
}
