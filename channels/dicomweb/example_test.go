package dicomweb_test

import (
	"fmt"
	"time"

	"github.com/osprey-health/osprey/channels/dicomweb"
)

// The plugin layer mints a token for one study and hands it to the plugin with the study's
// DICOMweb root; the source admits it for that study only, until it expires.
func ExampleMintToken() {
	key := []byte("a key of at least thirty-two bytes!!")
	token := dicomweb.MintToken(key, "1.2.826.0.1.3680043.10.1234.1", 10*time.Minute)

	study, err := dicomweb.VerifyToken(key, token, time.Now())
	fmt.Println(study, err)
	_, err = dicomweb.VerifyToken(key, token, time.Now().Add(time.Hour))
	fmt.Println(err)
	// Output:
	// 1.2.826.0.1.3680043.10.1234.1 <nil>
	// dicomweb: scoped token expired
}
