"""The model-card metadata every SR3 card carries."""

import pytest
from huggingface_hub import ModelCard

from sr3_diffusers.model_card import hub_dataset_ids, sr3_card_data


def test_only_hub_dataset_ids_go_into_datasets(tmp_path):
    (tmp_path / "photos").mkdir()
    names = ["eugenesiow/Div2k", "div2k", str(tmp_path / "photos"), "/abs/path/images", None, "eugenesiow/Div2k"]
    assert hub_dataset_ids(names) == ["eugenesiow/Div2k", "div2k"]
    assert hub_dataset_ids([str(tmp_path / "photos")]) is None


def test_card_data_has_the_library_and_a_license_link_for_other_licenses():
    data = sr3_card_data(license="other", license_name="mixed", license_link="LICENSE", model_name="me/sr3")
    card = ModelCard(f"---\n{data.to_yaml()}\n---\n\n# me/sr3\n")
    assert card.data.library_name == "diffusers" and card.data.license_link == "LICENSE"
    with pytest.raises(ValueError, match="`license: other` needs `license_link`"):
        sr3_card_data(license="other")
