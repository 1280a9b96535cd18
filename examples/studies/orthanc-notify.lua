-- Orthanc Lua script: tell Osprey when a study is stable.
--
-- Orthanc calls OnStableStudy once no instance of a study has arrived for "StableAge"
-- seconds (Orthanc's configuration, default 60). The script then posts the notification that
-- Osprey's source.dicomweb_notify takes; Osprey reads the study's metadata back from
-- Orthanc's DICOMweb plugin.
--
-- Install: add this file to "LuaScripts" in Orthanc's configuration and set the three values
-- below. Keep the token in a file readable by Orthanc only, or in Orthanc's environment.

-- Where source.dicomweb_notify listens (its address and path).
local OSPREY_NOTIFY_URL = "http://127.0.0.1:8082/notify"
-- Orthanc's DICOMweb root as Osprey reaches it (the "Root" of the DicomWeb plugin).
local ORTHANC_DICOMWEB = "http://127.0.0.1:8042/dicom-web"
-- One of the source's tokens; empty when the source takes none.
local OSPREY_TOKEN = ""

function OnStableStudy(studyId, tags, metadata)
  local uid = tags["StudyInstanceUID"]
  if uid == nil or uid == "" then
    -- Orthanc's tags lack the UID only for a corrupt study: ask the REST API.
    local study = ParseJson(RestApiGet("/studies/" .. studyId))
    uid = study["MainDicomTags"]["StudyInstanceUID"]
  end
  local notification = {
    event = "study.stable",
    study_instance_uid = uid,
    accession_number = tags["AccessionNumber"] or "",
    dicomweb = ORTHANC_DICOMWEB,
  }
  local headers = { ["Content-Type"] = "application/json" }
  if OSPREY_TOKEN ~= "" then
    headers["Authorization"] = "Bearer " .. OSPREY_TOKEN
  end
  -- HttpPost returns nil, or raises an error, when Osprey is unreachable or answers an
  -- error; pcall keeps one failed notification from stopping the script.
  local ok, answer = pcall(HttpPost, OSPREY_NOTIFY_URL, DumpJson(notification, true), headers)
  if ok and answer ~= nil then
    print("osprey: notified stable study " .. studyId)
  else
    print("osprey: notifying stable study " .. studyId .. " failed: " .. tostring(answer))
  end
end
