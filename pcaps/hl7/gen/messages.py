#!/usr/bin/python3
"""Writes the HL7 v2 messages the captures carry (made-up patients only) into DIR:
mixed.msgs, lf.msgs, batch.msgs (mllp_send input: messages separated by 0x1C), adt.hl7 and
oru.hl7 (single messages for HTTP and the split sender)."""
import os
import sys

out = sys.argv[1]
FS = "\x1c"


def msg(*segs, sep="\r"):
    return sep.join(segs) + sep


ADT = msg(
    "MSH|^~\\&|ADT1|GOOD HEALTH HOSPITAL|LAB|GHH|20240101120000||ADT^A01^ADT_A01|ADT0001|P|2.5.1",
    "EVN|A01|20240101120000",
    "PID|1||PAT000123^^^GHH^MR||DOE^JANE^Q^^^^L||19700101|F|||1 MAIN ST^^SPRINGFIELD^IL^62701||(555)555-0100|||S||AC0001|123-45-6789",
    "NK1|1|DOE^JOHN|SPO^SPOUSE||(555)555-0101",
    "PV1|1|I|ICU^1^2^GHH||||0148^ADDISON^JAMES||||||||||||V0001",
)
ORM = msg(
    "MSH|^~\\&|RIS|RAD|MODALITY|CT01|20240101121000||ORM^O01^ORM_O01|ORM0002|P|2.3",
    "PID|1||PAT000123^^^GHH^MR||DOE^JANE",
    "PV1|1|O",
    "ORC|NW|PLC1001|FIL2001||SC",
    "OBR|1|PLC1001|FIL2001|71020^CHEST XRAY 2 VIEWS^CPT|||20240101121000",
)
ORU = msg(
    "MSH|^~\\&|MONITOR|ICU|EHR|GHH|20240101122000||ORU^R01^ORU_R01|ORU0003|P|2.7",
    "PID|1||PAT000124^^^GHH^MR||ROE^RICHARD",
    "OBR|1|PLC1002|FIL2002|8867-4^Heart rate^LN",
    "OBX|1|NM|8867-4^Heart rate^LN||72|/min|||||F|||20240101121955||||MON-ICU-07",
    "OBX|2|NM|8310-5^Body temperature^LN||37.1|Cel|||||F|||20240101121955||||MON-ICU-07",
    "PRT|1|AD||EQUIP||||||||||||(01)00812345678901(21)SN4711|||LOT9|SN4711||MON",
)
SIU = msg(
    "MSH|^~\\&|SCHED|GHH|RIS|RAD|20240101123000||SIU^S12^SIU_S12|SIU0004|P|2.5",
    "SCH|APT1|APT1||||ROUTINE|||30|min",
    "PID|1||PAT000125^^^GHH^MR||SMITH^ALEX",
    "RGS|1",
    "AIS|1||CTHEAD^CT HEAD",
)
ESC = msg(
    "MSH|^~\\&|ADT1|GOOD HEALTH HOSPITAL|LAB|GHH|20240101124000||ADT^A08^ADT_A01|ADT0005|P|2.5.1",
    "EVN|A08|20240101124000",
    "PID|1||PAT000126^^^GHH^MR||O\\T\\BRIEN\\S\\JR^MARY\\F\\ANN||19800202|F",
    "PV1|1|O",
)
ERR = msg(
    "MSH|^~\\&|RIS|RAD|MODALITY|CT01|20240101125000||ORM^O01^ORM_O01|ERR0006|P|2.3",
    "PID|1||PAT000127^^^GHH^MR||NGUYEN^TAM",
    "ORC|NW|PLC1003",
)
LF = msg(
    "MSH|^~\\&|ADT1|GOOD HEALTH HOSPITAL|LAB|GHH|20240101130000||ADT^A08^ADT_A01|LF0001|P|2.4",
    "PID|1||PAT000128^^^GHH^MR||GARCIA^LUIS||19650505|M",
    "PV1|1|O",
    sep="\n",
)
BATCH = msg(
    "FHS|^~\\&|LAB|GHH|EHR|GHH|20240101140000",
    "BHS|^~\\&|LAB|GHH|EHR|GHH|20240101140000",
    "MSH|^~\\&|LAB|GHH|EHR|GHH|20240101140001||ORU^R01^ORU_R01|B0001|P|2.5",
    "PID|1||PAT000129^^^GHH^MR||BERG^NORA",
    "OBX|1|NM|2345-7^Glucose^LN||95|mg/dL|||||F",
    "MSH|^~\\&|LAB|GHH|EHR|GHH|20240101140002||ORU^R01^ORU_R01|B0002|P|2.5",
    "PID|1||PAT000130^^^GHH^MR||ROSSI^LEA",
    "OBX|1|NM|2345-7^Glucose^LN||101|mg/dL|||||F",
    "BTS|2",
    "FTS|1",
)

files = {
    "mixed.msgs": FS.join([ADT, ORM, ORU, SIU, ESC, ERR]) + FS,
    "lf.msgs": LF + FS + LF.replace("LF0001", "LF0002") + FS,
    "batch.msgs": BATCH + FS,
    "adt.hl7": ADT,
    "oru.hl7": ORU,
}
for name, text in files.items():
    with open(os.path.join(out, name), "w", newline="") as f:
        f.write(text)
