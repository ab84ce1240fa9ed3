"""Demo and scenario tooling (synthetic traffic, the end-to-end scenario): not part of the product."""
