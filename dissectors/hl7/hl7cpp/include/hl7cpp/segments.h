#pragma once
// Named access to the segments that matter, e.g. msg.pid().patient_name(). Field names and
// numbers follow HL7 v2.5 (PRT: v2.7). Each accessor is a zero-copy Field view; an absent
// segment answers empty fields, so chains never need a null check.
// Included by hl7cpp/message.h; not meant to be included on its own.

namespace hl7cpp {

#define HL7CPP_FIELD(fn, num) \
  Field fn() const { return field(num); }

class Msh : public Segment {
 public:
  using Segment::Segment;
  HL7CPP_FIELD(field_separator, 1)
  HL7CPP_FIELD(encoding_characters, 2)
  HL7CPP_FIELD(sending_application, 3)
  HL7CPP_FIELD(sending_facility, 4)
  HL7CPP_FIELD(receiving_application, 5)
  HL7CPP_FIELD(receiving_facility, 6)
  HL7CPP_FIELD(date_time_of_message, 7)
  HL7CPP_FIELD(security, 8)
  HL7CPP_FIELD(message_type, 9)
  HL7CPP_FIELD(message_control_id, 10)
  HL7CPP_FIELD(processing_id, 11)
  HL7CPP_FIELD(version_id, 12)
  HL7CPP_FIELD(sequence_number, 13)
  HL7CPP_FIELD(continuation_pointer, 14)
  HL7CPP_FIELD(accept_acknowledgment_type, 15)
  HL7CPP_FIELD(application_acknowledgment_type, 16)
  HL7CPP_FIELD(country_code, 17)
  HL7CPP_FIELD(character_set, 18)
  HL7CPP_FIELD(principal_language_of_message, 19)
  HL7CPP_FIELD(alternate_character_set_handling_scheme, 20)
  HL7CPP_FIELD(message_profile_identifier, 21)
  // MSH-9 components: message code, trigger event, message structure.
  std::string_view message_code() const { return message_type().component(1).raw(); }
  std::string_view trigger_event() const { return message_type().component(2).raw(); }
  std::string_view message_structure() const { return message_type().component(3).raw(); }
};

class Evn : public Segment {
 public:
  using Segment::Segment;
  HL7CPP_FIELD(event_type_code, 1)
  HL7CPP_FIELD(recorded_date_time, 2)
  HL7CPP_FIELD(date_time_planned_event, 3)
  HL7CPP_FIELD(event_reason_code, 4)
  HL7CPP_FIELD(operator_id, 5)
  HL7CPP_FIELD(event_occurred, 6)
  HL7CPP_FIELD(event_facility, 7)
};

class Pid : public Segment {
 public:
  using Segment::Segment;
  HL7CPP_FIELD(set_id, 1)
  HL7CPP_FIELD(patient_id, 2)
  HL7CPP_FIELD(patient_identifier_list, 3)
  HL7CPP_FIELD(alternate_patient_id, 4)
  HL7CPP_FIELD(patient_name, 5)
  HL7CPP_FIELD(mothers_maiden_name, 6)
  HL7CPP_FIELD(date_time_of_birth, 7)
  HL7CPP_FIELD(administrative_sex, 8)
  HL7CPP_FIELD(patient_alias, 9)
  HL7CPP_FIELD(race, 10)
  HL7CPP_FIELD(patient_address, 11)
  HL7CPP_FIELD(county_code, 12)
  HL7CPP_FIELD(phone_number_home, 13)
  HL7CPP_FIELD(phone_number_business, 14)
  HL7CPP_FIELD(primary_language, 15)
  HL7CPP_FIELD(marital_status, 16)
  HL7CPP_FIELD(religion, 17)
  HL7CPP_FIELD(patient_account_number, 18)
  HL7CPP_FIELD(ssn_number, 19)
  HL7CPP_FIELD(drivers_license_number, 20)
  HL7CPP_FIELD(mothers_identifier, 21)
  HL7CPP_FIELD(ethnic_group, 22)
  HL7CPP_FIELD(birth_place, 23)
  HL7CPP_FIELD(multiple_birth_indicator, 24)
  HL7CPP_FIELD(birth_order, 25)
  HL7CPP_FIELD(citizenship, 26)
  HL7CPP_FIELD(veterans_military_status, 27)
  HL7CPP_FIELD(nationality, 28)
  HL7CPP_FIELD(patient_death_date_and_time, 29)
  HL7CPP_FIELD(patient_death_indicator, 30)
};

class Pd1 : public Segment {
 public:
  using Segment::Segment;
  HL7CPP_FIELD(living_dependency, 1)
  HL7CPP_FIELD(living_arrangement, 2)
  HL7CPP_FIELD(patient_primary_facility, 3)
  HL7CPP_FIELD(patient_primary_care_provider, 4)
  HL7CPP_FIELD(student_indicator, 5)
  HL7CPP_FIELD(handicap, 6)
  HL7CPP_FIELD(living_will_code, 7)
  HL7CPP_FIELD(organ_donor_code, 8)
  HL7CPP_FIELD(separate_bill, 9)
  HL7CPP_FIELD(duplicate_patient, 10)
  HL7CPP_FIELD(publicity_code, 11)
  HL7CPP_FIELD(protection_indicator, 12)
};

class Nk1 : public Segment {
 public:
  using Segment::Segment;
  HL7CPP_FIELD(set_id, 1)
  HL7CPP_FIELD(name, 2)
  HL7CPP_FIELD(relationship, 3)
  HL7CPP_FIELD(address, 4)
  HL7CPP_FIELD(phone_number, 5)
  HL7CPP_FIELD(business_phone_number, 6)
  HL7CPP_FIELD(contact_role, 7)
  HL7CPP_FIELD(start_date, 8)
  HL7CPP_FIELD(end_date, 9)
  HL7CPP_FIELD(date_time_of_birth, 16)
  HL7CPP_FIELD(contact_persons_name, 30)
  HL7CPP_FIELD(contact_persons_telephone_number, 31)
  HL7CPP_FIELD(contact_persons_address, 32)
  HL7CPP_FIELD(contact_person_social_security_number, 37)
};

class Pv1 : public Segment {
 public:
  using Segment::Segment;
  HL7CPP_FIELD(set_id, 1)
  HL7CPP_FIELD(patient_class, 2)
  HL7CPP_FIELD(assigned_patient_location, 3)
  HL7CPP_FIELD(admission_type, 4)
  HL7CPP_FIELD(preadmit_number, 5)
  HL7CPP_FIELD(prior_patient_location, 6)
  HL7CPP_FIELD(attending_doctor, 7)
  HL7CPP_FIELD(referring_doctor, 8)
  HL7CPP_FIELD(consulting_doctor, 9)
  HL7CPP_FIELD(hospital_service, 10)
  HL7CPP_FIELD(admitting_doctor, 17)
  HL7CPP_FIELD(patient_type, 18)
  HL7CPP_FIELD(visit_number, 19)
  HL7CPP_FIELD(discharge_disposition, 36)
  HL7CPP_FIELD(admit_date_time, 44)
  HL7CPP_FIELD(discharge_date_time, 45)
};

class Orc : public Segment {
 public:
  using Segment::Segment;
  HL7CPP_FIELD(order_control, 1)
  HL7CPP_FIELD(placer_order_number, 2)
  HL7CPP_FIELD(filler_order_number, 3)
  HL7CPP_FIELD(placer_group_number, 4)
  HL7CPP_FIELD(order_status, 5)
  HL7CPP_FIELD(response_flag, 6)
  HL7CPP_FIELD(quantity_timing, 7)
  HL7CPP_FIELD(parent, 8)
  HL7CPP_FIELD(date_time_of_transaction, 9)
  HL7CPP_FIELD(entered_by, 10)
  HL7CPP_FIELD(verified_by, 11)
  HL7CPP_FIELD(ordering_provider, 12)
  HL7CPP_FIELD(enterers_location, 13)
  HL7CPP_FIELD(call_back_phone_number, 14)
  HL7CPP_FIELD(ordering_facility_name, 21)
};

class Obr : public Segment {
 public:
  using Segment::Segment;
  HL7CPP_FIELD(set_id, 1)
  HL7CPP_FIELD(placer_order_number, 2)
  HL7CPP_FIELD(filler_order_number, 3)
  HL7CPP_FIELD(universal_service_identifier, 4)
  HL7CPP_FIELD(priority, 5)
  HL7CPP_FIELD(requested_date_time, 6)
  HL7CPP_FIELD(observation_date_time, 7)
  HL7CPP_FIELD(observation_end_date_time, 8)
  HL7CPP_FIELD(specimen_action_code, 11)
  HL7CPP_FIELD(relevant_clinical_information, 13)
  HL7CPP_FIELD(specimen_source, 15)
  HL7CPP_FIELD(ordering_provider, 16)
  HL7CPP_FIELD(order_callback_phone_number, 17)
  HL7CPP_FIELD(placer_field_1, 18)
  HL7CPP_FIELD(placer_field_2, 19)
  HL7CPP_FIELD(filler_field_1, 20)
  HL7CPP_FIELD(filler_field_2, 21)
  HL7CPP_FIELD(results_rpt_status_chng_date_time, 22)
  HL7CPP_FIELD(diagnostic_serv_sect_id, 24)
  HL7CPP_FIELD(result_status, 25)
};

class Obx : public Segment {
 public:
  using Segment::Segment;
  HL7CPP_FIELD(set_id, 1)
  HL7CPP_FIELD(value_type, 2)
  HL7CPP_FIELD(observation_identifier, 3)
  HL7CPP_FIELD(observation_sub_id, 4)
  HL7CPP_FIELD(observation_value, 5)
  HL7CPP_FIELD(units, 6)
  HL7CPP_FIELD(references_range, 7)
  HL7CPP_FIELD(abnormal_flags, 8)
  HL7CPP_FIELD(observation_result_status, 11)
  HL7CPP_FIELD(date_time_of_the_observation, 14)
  HL7CPP_FIELD(producers_id, 15)
  HL7CPP_FIELD(responsible_observer, 16)
  HL7CPP_FIELD(observation_method, 17)
  HL7CPP_FIELD(equipment_instance_identifier, 18)
  HL7CPP_FIELD(date_time_of_the_analysis, 19)
};

class Msa : public Segment {
 public:
  using Segment::Segment;
  HL7CPP_FIELD(acknowledgment_code, 1)
  HL7CPP_FIELD(message_control_id, 2)
  HL7CPP_FIELD(text_message, 3)
  HL7CPP_FIELD(expected_sequence_number, 4)
  HL7CPP_FIELD(delayed_acknowledgment_type, 5)
  HL7CPP_FIELD(error_condition, 6)
};

class Err : public Segment {
 public:
  using Segment::Segment;
  HL7CPP_FIELD(error_code_and_location, 1)
  HL7CPP_FIELD(error_location, 2)
  HL7CPP_FIELD(hl7_error_code, 3)
  HL7CPP_FIELD(severity, 4)
  HL7CPP_FIELD(application_error_code, 5)
  HL7CPP_FIELD(application_error_parameter, 6)
  HL7CPP_FIELD(diagnostic_information, 7)
  HL7CPP_FIELD(user_message, 8)
};

class In1 : public Segment {
 public:
  using Segment::Segment;
  HL7CPP_FIELD(set_id, 1)
  HL7CPP_FIELD(insurance_plan_id, 2)
  HL7CPP_FIELD(insurance_company_id, 3)
  HL7CPP_FIELD(insurance_company_name, 4)
  HL7CPP_FIELD(insurance_company_address, 5)
  HL7CPP_FIELD(group_number, 8)
  HL7CPP_FIELD(group_name, 9)
  HL7CPP_FIELD(name_of_insured, 16)
  HL7CPP_FIELD(insureds_relationship_to_patient, 17)
  HL7CPP_FIELD(insureds_date_of_birth, 18)
  HL7CPP_FIELD(insureds_address, 19)
  HL7CPP_FIELD(policy_number, 36)
  HL7CPP_FIELD(insureds_id_number, 49)
};

class Gt1 : public Segment {
 public:
  using Segment::Segment;
  HL7CPP_FIELD(set_id, 1)
  HL7CPP_FIELD(guarantor_number, 2)
  HL7CPP_FIELD(guarantor_name, 3)
  HL7CPP_FIELD(guarantor_spouse_name, 4)
  HL7CPP_FIELD(guarantor_address, 5)
  HL7CPP_FIELD(guarantor_ph_num_home, 6)
  HL7CPP_FIELD(guarantor_ph_num_business, 7)
  HL7CPP_FIELD(guarantor_date_time_of_birth, 8)
  HL7CPP_FIELD(guarantor_administrative_sex, 9)
  HL7CPP_FIELD(guarantor_type, 10)
  HL7CPP_FIELD(guarantor_relationship, 11)
  HL7CPP_FIELD(guarantor_ssn, 12)
  HL7CPP_FIELD(guarantor_employer_name, 16)
};

class Mrg : public Segment {
 public:
  using Segment::Segment;
  HL7CPP_FIELD(prior_patient_identifier_list, 1)
  HL7CPP_FIELD(prior_alternate_patient_id, 2)
  HL7CPP_FIELD(prior_patient_account_number, 3)
  HL7CPP_FIELD(prior_patient_id, 4)
  HL7CPP_FIELD(prior_visit_number, 5)
  HL7CPP_FIELD(prior_alternate_visit_id, 6)
  HL7CPP_FIELD(prior_patient_name, 7)
};

// Participation (v2.7+): people, organisations and devices taking part in an order/result.
class Prt : public Segment {
 public:
  using Segment::Segment;
  HL7CPP_FIELD(participation_instance_id, 1)
  HL7CPP_FIELD(action_code, 2)
  HL7CPP_FIELD(action_reason, 3)
  HL7CPP_FIELD(participation, 4)
  HL7CPP_FIELD(participation_person, 5)
  HL7CPP_FIELD(participation_person_provider_type, 6)
  HL7CPP_FIELD(participant_organization_unit_type, 7)
  HL7CPP_FIELD(participation_organization, 8)
  HL7CPP_FIELD(participant_location, 9)
  HL7CPP_FIELD(participation_device, 10)
  HL7CPP_FIELD(participation_begin_date_time, 11)
  HL7CPP_FIELD(participation_end_date_time, 12)
  HL7CPP_FIELD(participant_qualitative_duration, 13)
  HL7CPP_FIELD(participation_address, 14)
  HL7CPP_FIELD(participant_telecommunication_address, 15)
  HL7CPP_FIELD(udi_device_identifier, 16)
  HL7CPP_FIELD(participant_device_manufacture_date, 17)
  HL7CPP_FIELD(participant_device_expiry_date, 18)
  HL7CPP_FIELD(participant_device_lot_number, 19)
  HL7CPP_FIELD(participant_device_serial_number, 20)
  HL7CPP_FIELD(participant_device_donation_identification, 21)
  HL7CPP_FIELD(participation_device_type, 22)
};

class Nte : public Segment {
 public:
  using Segment::Segment;
  HL7CPP_FIELD(set_id, 1)
  HL7CPP_FIELD(source_of_comment, 2)
  HL7CPP_FIELD(comment, 3)
  HL7CPP_FIELD(comment_type, 4)
};

#undef HL7CPP_FIELD

inline Msh Message::msh() const { Segment s = segment(0); return s && s.is_header() ? Msh(s.raw(), &sep_) : Msh(); }
inline Evn Message::evn() const { return Evn(find("EVN").raw(), &sep_); }
inline Pid Message::pid() const { return Pid(find("PID").raw(), &sep_); }
inline Pd1 Message::pd1() const { return Pd1(find("PD1").raw(), &sep_); }
inline Nk1 Message::nk1(size_t n) const { return Nk1(find("NK1", n).raw(), &sep_); }
inline Pv1 Message::pv1() const { return Pv1(find("PV1").raw(), &sep_); }
inline Orc Message::orc(size_t n) const { return Orc(find("ORC", n).raw(), &sep_); }
inline Obr Message::obr(size_t n) const { return Obr(find("OBR", n).raw(), &sep_); }
inline Obx Message::obx(size_t n) const { return Obx(find("OBX", n).raw(), &sep_); }
inline Msa Message::msa() const { return Msa(find("MSA").raw(), &sep_); }
inline Err Message::err(size_t n) const { return Err(find("ERR", n).raw(), &sep_); }
inline In1 Message::in1(size_t n) const { return In1(find("IN1", n).raw(), &sep_); }
inline Gt1 Message::gt1(size_t n) const { return Gt1(find("GT1", n).raw(), &sep_); }
inline Mrg Message::mrg() const { return Mrg(find("MRG").raw(), &sep_); }
inline Prt Message::prt(size_t n) const { return Prt(find("PRT", n).raw(), &sep_); }
inline Nte Message::nte(size_t n) const { return Nte(find("NTE", n).raw(), &sep_); }

}  // namespace hl7cpp
