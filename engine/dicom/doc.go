// Package dicom is Osprey's DICOM codec room: it builds, orders and encodes DICOM datasets as
// Part 10 files on top of github.com/suyashkumar/dicom, and mints UIDs.
//
// The underlying writer emits elements in the order it is given and leaves the File Meta
// Information to the caller, so every dataset written here goes through [Encode], which sorts
// elements by tag at every nesting level (sequence items included) and supplies the File Meta
// elements a conformant reader expects (FileMetaInformationVersion, ImplementationClassUID,
// Explicit VR Little Endian). Datasets written this way pass dciodvfy.
//
// Like the other codec rooms, this package imports nothing of Osprey.
package dicom
