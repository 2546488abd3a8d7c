"""The synthetic hospital's fixed vocabulary: conditions, reasons for admission, labs, chart items, drugs.

Every code the generator can emit is listed here with its MIMIC-IV dictionary text, so the d_* tables
it writes describe exactly the codes it used. ICD titles are those of MIMIC-IV 2.2's own dictionaries.
"""

from __future__ import annotations

from typing import NamedTuple


class Icd(NamedTuple):
    icd10: str
    title10: str
    icd9: str
    title9: str


class Condition(NamedTuple):
    name: str  # short name used in coefficients and notes
    words: str  # how a note writes it
    icd: Icd


# Chronic conditions, in the column order of the condition matrix.
CONDITIONS: tuple[Condition, ...] = (
    Condition("hypertension", "hypertension", Icd("I10", "Essential (primary) hypertension",
              "4019", "Unspecified essential hypertension")),
    Condition("hyperlipidemia", "hyperlipidemia", Icd("E785", "Hyperlipidemia, unspecified",
              "2724", "Other and unspecified hyperlipidemia")),
    Condition("diabetes", "type 2 diabetes mellitus", Icd(
        "E119", "Type 2 diabetes mellitus without complications", "25000",
        "Diabetes mellitus without mention of complication, type II or unspecified type, not stated as "
        "uncontrolled")),
    Condition("ckd", "chronic kidney disease", Icd("N189", "Chronic kidney disease, unspecified",
              "5859", "Chronic kidney disease, unspecified")),
    Condition("heart_failure", "congestive heart failure", Icd("I509", "Heart failure, unspecified",
              "4280", "Congestive heart failure, unspecified")),
    Condition("copd", "COPD", Icd("J449", "Chronic obstructive pulmonary disease, unspecified",
              "496", "Chronic airway obstruction, not elsewhere classified")),
    Condition("afib", "atrial fibrillation", Icd("I4891", "Unspecified atrial fibrillation",
              "42731", "Atrial fibrillation")),
    Condition("cad", "coronary artery disease", Icd(
        "I2510", "Atherosclerotic heart disease of native coronary artery without angina pectoris",
        "41401", "Coronary atherosclerosis of native coronary artery")),
    Condition("cancer", "lung cancer", Icd(
        "C3490", "Malignant neoplasm of unspecified part of unspecified bronchus or lung",
        "1629", "Malignant neoplasm of bronchus and lung, unspecified")),
    Condition("obesity", "obesity", Icd("E669", "Obesity, unspecified", "27800", "Obesity, unspecified")),
    Condition("depression", "depression", Icd(
        "F329", "Major depressive disorder, single episode, unspecified",
        "311", "Depressive disorder, not elsewhere classified")),
    Condition("smoker", "former tobacco use", Icd("Z87891", "Personal history of nicotine dependence",
              "V1582", "Personal history of tobacco use")),
)
COND = {c.name: i for i, c in enumerate(CONDITIONS)}
# The conditions whose onset within a year after discharge is an outcome (a built-in task each).
NEW_DX = ("hypertension", "hyperlipidemia", "ckd", "heart_failure", "diabetes")


class Reason(NamedTuple):
    """A principal diagnosis (reason for the encounter) with what follows from it."""

    name: str
    icd: Icd
    complaint: str  # ED chief complaint
    drg: str  # HCFA DRG code
    drg_text: str
    service: str  # hospital service (services.curr_service)
    ward: str  # careunit of the admitting ward (transfers)


REASONS: tuple[Reason, ...] = (
    Reason("sepsis", Icd("A419", "Sepsis, unspecified organism", "0389", "Unspecified septicemia"),
           "Fever", "871", "SEPTICEMIA OR SEVERE SEPSIS W/O MV >96 HOURS W MCC", "MED", "Medicine"),
    Reason("pneumonia", Icd("J189", "Pneumonia, unspecified organism", "486", "Pneumonia, organism unspecified"),
           "Cough, Fever", "193", "SIMPLE PNEUMONIA & PLEURISY W MCC", "MED", "Medicine"),
    Reason("heart failure exacerbation", Icd(
        "I5033", "Acute on chronic diastolic (congestive) heart failure", "42833",
        "Acute on chronic diastolic heart failure"),
           "Dyspnea", "291", "HEART FAILURE & SHOCK W MCC", "CMED", "Medicine/Cardiology"),
    Reason("acute kidney injury", Icd("N179", "Acute kidney failure, unspecified", "5849",
                                      "Acute kidney failure, unspecified"),
           "Abnormal labs", "682", "RENAL FAILURE W MCC", "MED", "Medicine"),
    Reason("COPD exacerbation", Icd(
        "J441", "Chronic obstructive pulmonary disease with (acute) exacerbation", "49121",
        "Obstructive chronic bronchitis with (acute) exacerbation"),
           "Dyspnea", "190", "CHRONIC OBSTRUCTIVE PULMONARY DISEASE W MCC", "MED", "Medicine"),
    Reason("urinary tract infection", Icd("N390", "Urinary tract infection, site not specified", "5990",
                                          "Urinary tract infection, site not specified"),
           "Dysuria", "690", "KIDNEY & URINARY TRACT INFECTIONS W/O MCC", "MED", "Medicine"),
    Reason("gastrointestinal bleed", Icd("K922", "Gastrointestinal hemorrhage, unspecified", "5789",
                                         "Hemorrhage of gastrointestinal tract, unspecified"),
           "Melena", "378", "G.I. HEMORRHAGE W CC", "MED", "Medicine"),
    Reason("chest pain", Icd("R079", "Chest pain, unspecified", "78650", "Chest pain, unspecified"),
           "Chest pain", "313", "CHEST PAIN", "CMED", "Medicine/Cardiology"),
    Reason("syncope", Icd("R55", "Syncope and collapse", "7802", "Syncope and collapse"),
           "Syncope", "312", "SYNCOPE & COLLAPSE", "MED", "Medicine"),
    Reason("stroke", Icd("I639", "Cerebral infarction, unspecified", "43491",
                         "Cerebral artery occlusion, unspecified with cerebral infarction"),
           "Weakness", "065", "INTRACRANIAL HEMORRHAGE OR CEREBRAL INFARCTION W CC", "NMED", "Neurology"),
    Reason("hip fracture", Icd(
        "S72001A", "Fracture of unspecified part of neck of right femur, initial encounter for closed fracture",
        "82000", "Closed fracture of intracapsular section of neck of femur, unspecified"),
           "s/p Fall", "480", "HIP & FEMUR PROCEDURES EXCEPT MAJOR JOINT W MCC", "ORTHO", "Orthopaedics"),
    Reason("cellulitis", Icd("L03115", "Cellulitis of right lower limb", "6826",
                             "Cellulitis and abscess of leg, except foot"),
           "Leg swelling", "603", "CELLULITIS W/O MCC", "MED", "Medicine"),
    Reason("knee osteoarthritis", Icd("M1711", "Unilateral primary osteoarthritis, right knee", "71536",
                                      "Osteoarthrosis, localized, not specified whether primary or secondary, "
                                      "lower leg"),
           "Knee pain", "470", "MAJOR JOINT REPLACEMENT OR REATTACHMENT OF LOWER EXTREMITY W/O MCC", "ORTHO",
           "Orthopaedics"),
)
REASON = {r.name: i for i, r in enumerate(REASONS)}
ELECTIVE_REASON = REASON["knee osteoarthritis"]

# Reasons for ED visits that end at home.
ED_ONLY_REASONS: tuple[Reason, ...] = tuple(
    Reason(name, icd, complaint, "", "", "", "") for name, icd, complaint in (
        ("abdominal pain", Icd("R109", "Unspecified abdominal pain", "78900", "Abdominal pain, unspecified site"),
         "Abd pain"),
        ("low back pain", Icd("M545", "Low back pain", "7242", "Lumbago"), "Back pain"),
        ("headache", Icd("R51", "Headache", "7840", "Headache"), "Headache"),
        ("dizziness", Icd("R42", "Dizziness and giddiness", "7804", "Dizziness and giddiness"), "Dizziness"),
        ("cough", Icd("R05", "Cough", "7862", "Cough"), "Cough"),
        ("chest pain", REASONS[REASON["chest pain"]].icd, "Chest pain"),
    )
)

# Secondary codes added to admissions (the coding "long tail"), with the probability of each.
SECONDARY: tuple[tuple[Icd, float], ...] = (
    (Icd("K219", "Gastro-esophageal reflux disease without esophagitis", "53081", "Esophageal reflux"), 0.25),
    (Icd("E039", "Hypothyroidism, unspecified", "2449", "Unspecified acquired hypothyroidism"), 0.12),
    (Icd("G4733", "Obstructive sleep apnea (adult) (pediatric)", "32723",
         "Obstructive sleep apnea (adult)(pediatric)"), 0.10),
    (Icd("F419", "Anxiety disorder, unspecified", "30000", "Anxiety state, unspecified"), 0.15),
    (Icd("M109", "Gout, unspecified", "2749", "Gout, unspecified"), 0.06),
    (Icd("Z86718", "Personal history of other venous thrombosis and embolism", "V1251",
         "Personal history of venous thrombosis and embolism"), 0.07),
    (Icd("K5900", "Constipation, unspecified", "56400", "Constipation, unspecified"), 0.18),
    (Icd("E876", "Hypokalemia", "2768", "Hypopotassemia"), 0.15),
    (Icd("R0902", "Hypoxemia", "79902", "Hypoxemia"), 0.12),
    (Icd("E861", "Hypovolemia", "27652", "Hypovolemia"), 0.10),
    (Icd("Z7902", "Long term (current) use of antithrombotics/antiplatelets", "V5863",
         "Long-term (current) use of antiplatelet/antithrombotic"), 0.25),
    (Icd("Y929", "Unspecified place or not applicable", "E8497",
         "Accidents occurring in residential institution"), 0.15),
    (Icd("D62", "Acute posthemorrhagic anemia", "2851", "Acute posthemorrhagic anemia"), 0.06),
    (Icd("E872", "Acidosis", "2762", "Acidosis"), 0.08),
    (Icd("R0600", "Dyspnea, unspecified", "78609", "Other respiratory abnormalities"), 0.08),
)
# Codes that follow from a drawn state.
ICU_CODE = Icd("J9601", "Acute respiratory failure with hypoxia", "51881", "Acute respiratory failure")
SHOCK_CODE = Icd("R6521", "Severe sepsis with septic shock", "78552", "Septic shock")
DNR_CODE = Icd("Z66", "Do not resuscitate", "V4986", "Do not resuscitate status")
LAB_CODES = {  # outcome name -> the diagnosis coded when the abnormal lab happened
    "hyperkalemia": Icd("E875", "Hyperkalemia", "2767", "Hyperpotassemia"),
    "hypoglycemia": Icd("E162", "Hypoglycemia, unspecified", "2512", "Hypoglycemia, unspecified"),
    "hyponatremia": Icd("E871", "Hypo-osmolality and hyponatremia", "2761", "Hyposmolality and/or hyponatremia"),
    "thrombocytopenia": Icd("D696", "Thrombocytopenia, unspecified", "2875", "Thrombocytopenia, unspecified"),
    "anemia": Icd("D649", "Anemia, unspecified", "2859", "Anemia, unspecified"),
    "aki": REASONS[REASON["acute kidney injury"]].icd,
}

# Procedures (ICD-10-PCS, ICD-9 procedure).
PROCEDURES = {
    "ventilation": Icd("5A1955Z", "Respiratory Ventilation, Greater than 96 Consecutive Hours",
                       "9672", "Continuous invasive mechanical ventilation for 96 consecutive hours or more"),
    "central_line": Icd("02HV33Z", "Insertion of Infusion Device into Superior Vena Cava, Percutaneous Approach",
                        "3893", "Venous catheterization, not elsewhere classified"),
    "dialysis": Icd("5A1D70Z", "Performance of Urinary Filtration, Intermittent, Less than 6 Hours Per Day",
                    "3995", "Hemodialysis"),
    "transfusion": Icd("30233N1", "Transfusion of Nonautologous Red Blood Cells into Peripheral Vein, "
                       "Percutaneous Approach", "9904", "Transfusion of packed cells"),
    "knee_replacement": Icd("0SRD0JZ", "Replacement of Left Knee Joint with Synthetic Substitute, Open Approach",
                            "8154", "Total knee replacement"),
    "cardiac_cath": Icd("4A023N7", "Measurement of Cardiac Sampling and Pressure, Left Heart, Percutaneous "
                        "Approach", "3722", "Left heart cardiac catheterization"),
}


class Lab(NamedTuple):
    itemid: int
    label: str
    category: str
    unit: str
    low: float  # reference range
    high: float
    decimals: int


LABS: tuple[Lab, ...] = (
    Lab(50912, "Creatinine", "Chemistry", "mg/dL", 0.5, 1.2, 1),
    Lab(50971, "Potassium", "Chemistry", "mEq/L", 3.3, 5.1, 1),
    Lab(50983, "Sodium", "Chemistry", "mEq/L", 135, 147, 0),
    Lab(50902, "Chloride", "Chemistry", "mEq/L", 96, 108, 0),
    Lab(50882, "Bicarbonate", "Chemistry", "mEq/L", 22, 32, 0),
    Lab(51006, "Urea Nitrogen", "Chemistry", "mg/dL", 6, 20, 0),
    Lab(50931, "Glucose", "Chemistry", "mg/dL", 70, 100, 0),
    Lab(51222, "Hemoglobin", "Hematology", "g/dL", 13.7, 17.5, 1),
    Lab(51221, "Hematocrit", "Hematology", "%", 40, 51, 1),
    Lab(51265, "Platelet Count", "Hematology", "K/uL", 150, 400, 0),
    Lab(51301, "White Blood Cells", "Hematology", "K/uL", 4, 10, 1),
    Lab(51237, "INR(PT)", "Hematology", "", 0.9, 1.1, 1),
    Lab(50885, "Bilirubin, Total", "Chemistry", "mg/dL", 0, 1.5, 1),
    Lab(50813, "Lactate", "Blood Gas", "mmol/L", 0.5, 2, 1),
)
LAB = {lab.label: i for i, lab in enumerate(LABS)}


class Item(NamedTuple):
    itemid: int
    label: str
    abbreviation: str
    linksto: str
    category: str
    unit: str
    param_type: str


CHART_ITEMS: tuple[Item, ...] = (
    Item(220045, "Heart Rate", "HR", "chartevents", "Routine Vital Signs", "bpm", "Numeric"),
    Item(220179, "Non Invasive Blood Pressure systolic", "NBPs", "chartevents", "Routine Vital Signs", "mmHg",
         "Numeric"),
    Item(220180, "Non Invasive Blood Pressure diastolic", "NBPd", "chartevents", "Routine Vital Signs", "mmHg",
         "Numeric"),
    Item(220181, "Non Invasive Blood Pressure mean", "NBPm", "chartevents", "Routine Vital Signs", "mmHg",
         "Numeric"),
    Item(220210, "Respiratory Rate", "RR", "chartevents", "Respiratory", "insp/min", "Numeric"),
    Item(220277, "O2 saturation pulseoxymetry", "SpO2", "chartevents", "Respiratory", "%", "Numeric"),
    Item(223761, "Temperature Fahrenheit", "Temperature F", "chartevents", "Routine Vital Signs", "°F", "Numeric"),
    Item(220739, "GCS - Eye Opening", "Eye Opening", "chartevents", "Neurological", "", "Text"),
    Item(223900, "GCS - Verbal Response", "Verbal Response", "chartevents", "Neurological", "", "Text"),
    Item(223901, "GCS - Motor Response", "Motor Response", "chartevents", "Neurological", "", "Text"),
    Item(226512, "Admission Weight (Kg)", "Admission Weight (Kg)", "chartevents", "General", "kg", "Numeric"),
)
INPUT_ITEMS: tuple[Item, ...] = (
    Item(225158, "NaCl 0.9%", "NaCl 0.9%", "inputevents", "Fluids/Intake", "mL", "Solution"),
    Item(221906, "Norepinephrine", "Norepinephrine", "inputevents", "Medications", "mg", "Solution"),
)
OUTPUT_ITEMS: tuple[Item, ...] = (
    Item(226559, "Foley", "Foley", "outputevents", "Output", "mL", "Numeric"),
)
PROCEDURE_ITEMS: tuple[Item, ...] = (
    Item(225792, "Invasive Ventilation", "Invasive Ventilation", "procedureevents", "2-Ventilation", "", "Processes"),
)
ICU_UNITS = (
    "Medical Intensive Care Unit (MICU)", "Medical/Surgical Intensive Care Unit (MICU/SICU)",
    "Cardiac Vascular Intensive Care Unit (CVICU)", "Coronary Care Unit (CCU)",
    "Surgical Intensive Care Unit (SICU)",
)

# Drugs: (drug name, dose, unit, route, condition or reason that triggers it, ETC class for ED medrecon).
class Drug(NamedTuple):
    name: str
    dose: str
    unit: str
    route: str
    frequency: str
    trigger: str
    etc: str


DRUGS: tuple[Drug, ...] = (
    Drug("Lisinopril", "10", "mg", "PO", "DAILY", "hypertension", "ACE Inhibitors"),
    Drug("Amlodipine", "5", "mg", "PO", "DAILY", "hypertension", "Calcium Channel Blockers"),
    Drug("Atorvastatin", "40", "mg", "PO", "QPM", "hyperlipidemia", "Antihyperlipidemic - HMG CoA Reductase "
         "Inhibitors (statins)"),
    Drug("MetFORMIN (Glucophage)", "500", "mg", "PO", "BID", "diabetes", "Antidiabetic - Biguanides"),
    Drug("Insulin", "0", "UNIT", "SC", "ACHS", "diabetes", "Insulins"),
    Drug("Furosemide", "40", "mg", "IV", "DAILY", "heart_failure", "Loop Diuretics"),
    Drug("Metoprolol Tartrate", "25", "mg", "PO", "BID", "afib", "Beta Blockers Cardio-Selective"),
    Drug("Apixaban", "5", "mg", "PO", "BID", "afib", "Anticoagulants - Direct Factor Xa Inhibitors"),
    Drug("Aspirin", "81", "mg", "PO", "DAILY", "cad", "Platelet Aggregation Inhibitors"),
    Drug("Albuterol Inhaler", "2", "PUFF", "IH", "Q4H:PRN", "copd", "Beta-Adrenergic Agents"),
    Drug("Sertraline", "50", "mg", "PO", "DAILY", "depression", "Antidepressant - SSRIs"),
    Drug("CefTRIAXone", "1", "g", "IV", "Q24H", "infection", ""),
    Drug("Vancomycin", "1000", "mg", "IV", "Q12H", "infection", ""),
    Drug("Heparin", "5000", "UNIT", "SC", "TID", "all", ""),
    Drug("Acetaminophen", "650", "mg", "PO", "Q6H:PRN", "all", ""),
    Drug("Sodium Polystyrene Sulfonate", "15", "g", "PO", "ONCE", "hyperkalemia", ""),
    Drug("Dextrose 50%", "25", "gm", "IV", "ONCE", "hypoglycemia", ""),
)
