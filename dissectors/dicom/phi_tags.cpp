#include "dissectors/dicom/phi_tags.h"

#include <algorithm>
#include <array>

namespace medmon::dicom {

namespace {
constexpr PhiTag kTags[] = {
    // The command set's instance UIDs: the same linkable UID as SOPInstanceUID (tier 2).
    {0x00001000, "AffectedSOPInstanceUID", 2},
    {0x00001001, "RequestedSOPInstanceUID", 2},
    {0x00080018, "SOPInstanceUID", 2},
    {0x00080020, "StudyDate", 2},
    {0x00080021, "SeriesDate", 2},
    {0x00080022, "AcquisitionDate", 2},
    {0x00080023, "ContentDate", 2},
    {0x00080030, "StudyTime", 2},
    {0x00080031, "SeriesTime", 2},
    {0x00080032, "AcquisitionTime", 2},
    {0x00080033, "ContentTime", 2},
    {0x00080050, "AccessionNumber", 1},
    {0x00080080, "InstitutionName", 2},
    {0x00080081, "InstitutionAddress", 2},
    {0x00080090, "ReferringPhysicianName", 2},
    {0x00080092, "ReferringPhysicianAddress", 2},
    {0x00080094, "ReferringPhysicianTelephoneNumbers", 2},
    {0x00081010, "StationName", 2},
    {0x00081030, "StudyDescription", 2},
    {0x0008103E, "SeriesDescription", 2},
    {0x00081048, "PhysiciansOfRecord", 2},
    {0x00081050, "PerformingPhysicianName", 2},
    {0x00081060, "NameOfPhysiciansReadingStudy", 2},
    {0x00081070, "OperatorsName", 2},
    {0x00081080, "AdmittingDiagnosesDescription", 2},
    {0x00100010, "PatientName", 1},
    {0x00100020, "PatientID", 1},
    {0x00100021, "IssuerOfPatientID", 2},
    {0x00100030, "PatientBirthDate", 1},
    {0x00100032, "PatientBirthTime", 2},
    {0x00100040, "PatientSex", 2},
    {0x00100050, "PatientInsurancePlanCodeSequence", 1},
    {0x00101000, "OtherPatientIDs", 1},
    {0x00101001, "OtherPatientNames", 1},
    {0x00101002, "OtherPatientIDsSequence", 1},
    {0x00101005, "PatientBirthName", 1},
    {0x00101010, "PatientAge", 2},
    {0x00101020, "PatientSize", 2},
    {0x00101030, "PatientWeight", 2},
    {0x00101040, "PatientAddress", 1},
    {0x00101060, "PatientMotherBirthName", 1},
    {0x00101090, "MedicalRecordLocator", 1},
    {0x00101100, "ReferencedPatientPhotoSequence", 1},
    {0x00102150, "CountryOfResidence", 2},
    {0x00102154, "PatientTelephoneNumbers", 1},
    {0x00102160, "EthnicGroup", 2},
    {0x00102180, "Occupation", 2},
    {0x001021B0, "AdditionalPatientHistory", 2},
    {0x001021F0, "PatientReligiousPreference", 2},
    {0x00104000, "PatientComments", 2},
    {0x00181000, "DeviceSerialNumber", 2},
    {0x0020000D, "StudyInstanceUID", 2},
    {0x0020000E, "SeriesInstanceUID", 2},
    {0x00200010, "StudyID", 1},
    {0x00204000, "ImageComments", 2},
    {0x00321032, "RequestingPhysician", 2},
    {0x00321060, "RequestedProcedureDescription", 2},
    {0x00380010, "AdmissionID", 1},
    {0x00380300, "CurrentPatientLocation", 2},
    {0x00400001, "ScheduledStationAETitle", 2},
    {0x00400002, "ScheduledProcedureStepStartDate", 2},
    {0x00400003, "ScheduledProcedureStepStartTime", 2},
    {0x00400006, "ScheduledPerformingPhysicianName", 2},
    {0x00400009, "ScheduledProcedureStepID", 2},
    {0x00400244, "PerformedProcedureStepStartDate", 2},
    {0x00400245, "PerformedProcedureStepStartTime", 2},
    {0x00400253, "PerformedProcedureStepID", 2},
    {0x00401001, "RequestedProcedureID", 2},
    {0x00402016, "PlacerOrderNumberImagingServiceRequest", 1},
    {0x00402017, "FillerOrderNumberImagingServiceRequest", 1},
    {0x0040A123, "PersonName", 2},
    {0x0040A730, "ContentSequence", 1},
};
static_assert(std::size(kTags) <= kMaxPhiTags, "one PhiMask bit per tag");
}  // namespace

std::span<const PhiTag> phi_tags() { return kTags; }

int phi_index(uint32_t tag) {
  auto it = std::lower_bound(std::begin(kTags), std::end(kTags), tag,
                             [](const PhiTag& t, uint32_t v) { return t.tag < v; });
  return (it != std::end(kTags) && it->tag == tag) ? static_cast<int>(it - std::begin(kTags)) : -1;
}

}  // namespace medmon::dicom
