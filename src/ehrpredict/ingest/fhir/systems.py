"""Which FHIR code system becomes which ehrpredict code prefix: the one explicit table.

A FHIR ``Coding`` is ``(system, code)``; an ehrpredict code is ``PREFIX//code[//unit]``. The table below
is the whole mapping, so MIMIC-IV data reaches the same codes whether it comes through the CSV route
(``ehrpredict ingest mimic4``) or MIMIC-IV on FHIR (``ehrpredict ingest fhir``):

==========================================================  ======================  ===========================
system                                                      prefix                  as in the CSV route
==========================================================  ======================  ===========================
http://hl7.org/fhir/sid/icd-10-cm                           ICD10CM                 diagnoses_icd (version 10)
http://hl7.org/fhir/sid/icd-9-cm                            ICD9CM                  diagnoses_icd (version 9)
http://www.cms.gov/Medicare/Coding/ICD10 (ICD-10-PCS)       ICD10PCS                procedures_icd (10)
http://loinc.org                                            LOINC                   (none; ED vitals: see below)
http://snomed.info/sct                                      SNOMED                  (none)
http://www.nlm.nih.gov/research/umls/rxnorm                 RXNORM                  (none)
http://hl7.org/fhir/sid/ndc                                 NDC                     (none)
mimic: mimic-diagnosis-icd10 / -icd9                        ICD10CM / ICD9CM        diagnoses_icd, ed/diagnosis
mimic: mimic-procedure-icd10 / -icd9                        ICD10PCS / ICD9PROC     procedures_icd
mimic: mimic-hcpcs-cd                                       HCPCS                   hcpcsevents
mimic: mimic-d-labitems (and lab itemids)                   LAB                     labevents
mimic: mimic-d-items                                        CHART / OUTPUT /        chartevents, outputevents,
                                                            DATETIME / INPUT /      datetimeevents, inputevents,
                                                            ICU_PROCEDURE           procedureevents (by resource)
mimic: mimic-medication-icu                                 INPUT                   inputevents
mimic: mimic-medication-name / -formulary-drug-cd / -poe-iv MEDICATION, EMAR,       prescriptions, emar, pharmacy
                                                            PHARMACY (by resource)
mimic: mimic-medication-gsn / -etc (ED)                     ED_PYXIS / ED_MEDRECON  ed/pyxis, ed/medrecon
mimic: mimic-microbiology-test / -organism / -antibiotic    MICRO_TEST / MICRO_ORG  (CSV: one MICROBIOLOGY row
                                                            / MICRO_SUSC            per test; see the README)
urn:ehrpredict:code (code = a whole ehrpredict code)        (taken as is)           written by ``export fhir``
==========================================================  ======================  ===========================

ICD codes are written dotted (``I50.9``), as the CSV route writes them (MIMIC's own systems hold them
without the dot: ``I509``). The MIMIC ED's LOINC vital signs become ``ED_TRIAGE//<vital>`` or
``ED_VITAL//<vital>`` (see :data:`ED_VITALS_BY_LOINC`).

A coding from a system not in the table is **not dropped**: it gets a generic prefix derived from the
system, ``FHIR_`` and the system's last path segment in capitals (``http://example.org/cs/my-codes``
→ ``FHIR_MY_CODES``), and the data-quality report counts such rows under "code system not in the
table (generic prefix)", with the system, in ``flagged.parquet``.
"""

from __future__ import annotations

import re

from ehrpredict.vocab.icd import ICD9CM, ICD9PROC, ICD10CM, ICD10PCS, dotted

MIMIC_CS = "http://mimic.mit.edu/fhir/mimic/CodeSystem/"
MIMIC_ID = "http://mimic.mit.edu/fhir/mimic/identifier/"
OWN_CODE_SYSTEM = "urn:ehrpredict:code"  # the coding's code is a whole ehrpredict code, written by export
OWN_ID_SYSTEM = "urn:ehrpredict:id:"  # + subject_id / hadm_id / icu_stay_id / ed_stay_id / stay_id
GENERIC_PREFIX = "FHIR_"

# Standard terminologies (http://hl7.org/fhir/terminologies-systems.html).
STANDARD: dict[str, str] = {
    "http://hl7.org/fhir/sid/icd-10-cm": ICD10CM,
    "http://hl7.org/fhir/sid/icd-9-cm": ICD9CM,
    "http://www.cms.gov/Medicare/Coding/ICD10": ICD10PCS,
    "http://loinc.org": "LOINC",
    "http://snomed.info/sct": "SNOMED",
    "http://www.nlm.nih.gov/research/umls/rxnorm": "RXNORM",
    "http://hl7.org/fhir/sid/ndc": "NDC",
}

# MIMIC-IV on FHIR's own code systems whose prefix does not depend on the resource.
MIMIC: dict[str, str] = {
    MIMIC_CS + "mimic-diagnosis-icd10": ICD10CM,
    MIMIC_CS + "mimic-diagnosis-icd9": ICD9CM,
    MIMIC_CS + "mimic-procedure-icd10": ICD10PCS,
    MIMIC_CS + "mimic-procedure-icd9": ICD9PROC,
    MIMIC_CS + "mimic-hcpcs-cd": "HCPCS",
    MIMIC_CS + "mimic-d-labitems": "LAB",
    MIMIC_CS + "mimic-medication-icu": "INPUT",
    MIMIC_CS + "mimic-microbiology-test": "MICRO_TEST",
    MIMIC_CS + "mimic-microbiology-organism": "MICRO_ORG",
    MIMIC_CS + "mimic-microbiology-antibiotic": "MICRO_SUSC",
}
D_ITEMS = MIMIC_CS + "mimic-d-items"  # ICU itemids: the prefix depends on the resource (CHART, OUTPUT, ...)
# Drug codings MIMIC writes for the hospital's medications; the drug's name is preferred when present.
MIMIC_DRUG_SYSTEMS = (
    MIMIC_CS + "mimic-medication-name",
    MIMIC_CS + "mimic-medication-formulary-drug-cd",
    MIMIC_CS + "mimic-medication-poe-iv",
    MIMIC_CS + "mimic-medication-ndc",
    MIMIC_CS + "mimic-medication-gsn",
)
MIMIC_ETC = MIMIC_CS + "mimic-medication-etc"  # ED drug class: the medrecon row's etcdescription

# Billing vocabularies: coded after discharge, so timed at the end of their encounter (see mapper).
BILLING_PREFIXES = (ICD10CM, ICD9CM, ICD10PCS, ICD9PROC, "HCPCS", "DRG")
ICD_PREFIXES = (ICD10CM, ICD9CM, ICD9PROC)  # written dotted

# MIMIC-IV-ED vital signs and triage items by LOINC code → the CSV's column name.
ED_VITALS_BY_LOINC: dict[str, str] = {
    "8310-5": "temperature",
    "8867-4": "heartrate",
    "9279-1": "resprate",
    "2708-6": "o2sat",
    "59408-5": "o2sat",
    "8480-6": "sbp",
    "8462-4": "dbp",
    "72514-3": "pain",
    "98137-3": "pain",
    "56839-4": "acuity",
    "8661-1": "chiefcomplaint",
    "8884-9": "rhythm",
}
TRIAGE_PROCEDURE = ("http://snomed.info/sct", "386478007")  # "Triage: emergency center"

# Patient/Encounter identifier systems (MIMIC's, then ehrpredict's own).
SUBJECT_SYSTEMS = (MIMIC_ID + "patient", OWN_ID_SYSTEM + "subject_id")
HOSPITAL_SYSTEMS = (MIMIC_ID + "encounter-hosp", OWN_ID_SYSTEM + "hadm_id")
ICU_SYSTEMS = (MIMIC_ID + "encounter-icu", OWN_ID_SYSTEM + "icu_stay_id")
ED_SYSTEMS = (MIMIC_ID + "encounter-ed", OWN_ID_SYSTEM + "ed_stay_id")
STAY_SYSTEMS = (OWN_ID_SYSTEM + "stay_id",)  # a stay of unknown kind (export of events without visit codes)


def generic_prefix(system: str) -> str:
    """The prefix of a system not in the table: ``FHIR_`` + its last path segment in capitals.

    >>> generic_prefix("http://example.org/fhir/CodeSystem/my-codes")
    'FHIR_MY_CODES'
    >>> generic_prefix("urn:oid:2.16.840.1.113883.6.238")
    'FHIR_2_16_840_1_113883_6_238'
    """
    tail = re.split(r"[/:]", system.rstrip("/"))[-1] or "UNKNOWN"
    return GENERIC_PREFIX + (re.sub(r"[^A-Za-z0-9]+", "_", tail).strip("_").upper() or "UNKNOWN")


def prefix_of(system: str) -> tuple[str, bool]:
    """``(prefix, known)`` for a code system; ``known`` is False for a generic prefix."""
    known = STANDARD.get(system) or MIMIC.get(system)
    if known:
        return known, True
    return generic_prefix(system), False


def code_value(prefix: str, code: str) -> str:
    """The code part as the CSV route writes it: ICD codes dotted, others unchanged."""
    if prefix in ICD_PREFIXES and "." not in code:
        return dotted(prefix, code)
    return code


# The inverse, for export: prefix → the standard system a code of it is also written in.
EXPORT_STANDARD: dict[str, str] = {prefix: system for system, prefix in STANDARD.items()}
