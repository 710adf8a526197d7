from interp.models import load_model, DEFAULT_MODEL
