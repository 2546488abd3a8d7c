import polars as pl
from hypothesis import given
from hypothesis import strategies as st

from ehrpredict.vocab.icd import ICD9CM, ICD9PROC, ICD10CM, ICD10PCS, dotted, icd_code_expr, parent


def test_dotted_forms_follow_each_vocabulary() -> None:
    assert dotted(ICD9CM, "4280") == "428.0"
    assert dotted(ICD9CM, "E8497") == "E849.7"  # E-codes: dot after 4 characters
    assert dotted(ICD9CM, "V5861") == "V58.61"
    assert dotted(ICD9CM, "401") == "401"  # a 3-character category has no dot
    assert dotted(ICD10CM, "I509") == "I50.9"
    assert dotted(ICD9PROC, "3961") == "39.61"
    assert dotted(ICD10PCS, "0016070") == "0016070"


def test_parent_walks_up_to_the_category() -> None:
    assert parent(ICD10CM, "I50.91") == "I50.9"
    assert parent(ICD10CM, "I50.9") == "I50"
    assert parent(ICD10CM, "I50") is None
    assert parent(ICD10PCS, "0016070") is None


codes = st.text(alphabet="EV0123456789ABCXYZ", min_size=1, max_size=7)


@given(st.lists(st.tuples(codes, st.sampled_from(["9", "10"])), min_size=1, max_size=20))
def test_polars_expression_matches_python_twin(pairs: list[tuple[str, str]]) -> None:
    df = pl.DataFrame({"icd_code": [c for c, _ in pairs], "icd_version": [v for _, v in pairs]})
    for kind, (v9, v10) in {"diagnosis": (ICD9CM, ICD10CM), "procedure": (ICD9PROC, ICD10PCS)}.items():
        got = df.select(icd_code_expr(pl.col("icd_code"), pl.col("icd_version"), kind)).to_series().to_list()
        want = [f"{v9 if v == '9' else v10}//{dotted(v9 if v == '9' else v10, c)}" for c, v in pairs]
        assert got == want
