"""The demo district: 株洲市石峰区's real outline and codes, the rest synthesised."""

from gisgrid.demo.district import BASE_HOUSEHOLDS, make_district

__all__ = ["BASE_HOUSEHOLDS", "make_district"]
