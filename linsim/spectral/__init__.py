"""Spectral theory of joint-embedding SSL (docs/spectral.md): pairwise graphs, graph-form losses, closed-form
optima (non-parametric and linear) with their domains, exact or certified optima outside them, gradient-descent
comparison, multi-view losses, stepwise BT.

    >>> import linsim.spectral as sp
    >>> data = sp.gaussian_classes(seed=0)
    >>> W, lam = sp.vicreg_linear_weights(data.X, sp.label_graph(data.y), K=3)   # = Fisher LDA span
"""
from linsim.spectral.closed_forms import (  # noqa: F401
    barlow_graph_optimum,
    barlow_linear_weights,
    barlow_population_weights,
    centered_laplacian_eigs,
    equalize_diagonal,
    fisher_lda,
    linear_stats,
    low_data_weights,
    orthonormal_basis,
    simclr_clique_embedding,
    simplex_vertices,
    spectral_contrastive_embedding,
    spectral_contrastive_linear_weights,
    subspace_distance,
    vicreg_finite_embedding,
    vicreg_finite_value,
    vicreg_hard_embedding,
    vicreg_linear_weights,
    vicreg_low_data_weights,
    vicreg_sigma,
)
from linsim.spectral.compare import SpectralSolution, closed_form_vs_gd, probe_accuracy, solve  # noqa: F401
from linsim.spectral.exact import (  # noqa: F401
    barlow_certified_weights,
    barlow_zero_loss_mixing,
    barlow_zero_loss_weights,
    simclr_class_centres,
    simclr_collapsed_loss,
    spectral_contrastive_encoder_weights,
    vicreg_finite_beta_optimum,
    vicreg_reduced_loss,
    vicreg_unit_variance_optimum,
    whitened_cca,
)
from linsim.spectral.datasets import Dataset, gaussian_classes, two_view  # noqa: F401
from linsim.spectral.graphs import (  # noqa: F401
    centering,
    degree,
    knn_graph,
    label_graph,
    laplacian,
    multi_view_graph,
    n_components,
    normalized_adjacency,
    nuisance_graph,
    random_walk,
    two_view_graph,
    validate_graph,
)
from linsim.spectral.losses import (  # noqa: F401
    barlow_graph_loss,
    barlow_linear_loss,
    barlow_loss,
    nt_xent_graph_loss,
    nt_xent_loss,
    spectral_contrastive_graph_loss,
    spectral_contrastive_loss,
    spectral_contrastive_matrix_loss,
    vicreg_graph_loss,
    vicreg_loss,
)
from linsim.spectral.multiview import (  # noqa: F401
    augmentation_chain,
    kernel_estimation_error,
    multiview_barlow_loss,
    multiview_vicreg_loss,
    orthogonality_rank_study,
)
from linsim.spectral.optimize import Certified, OptResult, minimize_restarts, multistart  # noqa: F401
from linsim.spectral.stepwise import (  # noqa: F401
    aligned_trajectory,
    bt_flow_field,
    cross_correlation,
    embedding_eigenvalues,
    final_weights,
    jing_case1,
    kernel_final_embedding,
    loss_staircase,
    simulate_bt_flow,
    step_times,
)
