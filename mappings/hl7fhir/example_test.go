package hl7fhir_test

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/osprey-health/osprey/mappings/hl7fhir"
)

func ExampleConvert() {
	orm := "MSH|^~\\&|RIS|HOSP|OSPREY|HOSP|20261201221500+0100||ORM^O01|C1|P|2.5.1\r" +
		"PID|1||MRN4711^^^HOSP^MR||MUSTER^ERIKA||19610412|F\r" +
		"ORC|NW|PLC1^RIS|||||^^^^^S||20261201221400+0100|||1234^HOUSE^GREGORY\r" +
		"OBR|1|PLC1^RIS||CTHEADWO^CT head without contrast^L|||||||||||||||ACC1||||||CT\r"
	out, err := hl7fhir.Convert([]byte(orm), hl7fhir.Profile{Systems: map[string]string{"HOSP": "urn:oid:1.2.3.4", "RIS": "https://hosp.example/ris-orders", "L": "https://hosp.example/rad-codes"}})
	if err != nil {
		fmt.Println(err)
		return
	}
	var b struct {
		Entry []struct {
			Resource struct {
				ResourceType, Priority string
				Code                   struct {
					Coding []struct{ System, Code string }
				}
			}
			Request struct{ Method, URL, IfNoneExist string }
		}
	}
	_ = json.Unmarshal(out, &b)
	for _, e := range b.Entry {
		fmt.Println(strings.TrimSpace(e.Request.Method + " " + e.Request.URL + " " + e.Request.IfNoneExist))
		if e.Resource.ResourceType == "ServiceRequest" {
			fmt.Println(" priority", e.Resource.Priority, "code", e.Resource.Code.Coding[0].System, e.Resource.Code.Coding[0].Code)
		}
	}
	// Output:
	// POST Patient identifier=urn%3Aoid%3A1.2.3.4%7CMRN4711
	// PUT ServiceRequest?identifier=https%3A%2F%2Fhosp.example%2Fris-orders%7CPLC1
	//  priority stat code https://hosp.example/rad-codes CTHEADWO
}
