"""One module per resource, each declaring an `APIRouter`; `api.main` collects them."""
